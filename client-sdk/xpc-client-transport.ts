// The XPC transport, client side (macOS): a connection to the broker's mach
// service (PRIVILEGED only for the system daemon), or to an anonymous
// listener's endpoint. `req` is sent with a reply handler, as XPC services
// expect; INTERRUPTED (the broker exited or restarted) closes this connection
// so the client reconnects and resubscribes, as over the Unix socket. The
// native client is cancelled exactly once, by whichever end comes first; the
// addon also cancels it when the environment ends (a Worker, the process).

import type { ClientConnection, ClientConnectionHandlers, ClientTransport } from "./client-transport.js";
import { ConnectionError, UntrustedBrokerError, XpcbusError } from "./errors.js";
import type { ClientOp } from "../protocol/index.js";
import { loadNative, type NativeXpcClient, type NativeXpcObject } from "../native/index.js";

export interface XpcClientOptions {
  /** Mach service name, or an anonymous listener's endpoint (tests, in-process). */
  target: string | NativeXpcObject;
  /** The broker is a system daemon (launchd's system domain). */
  privileged?: boolean;
  /**
   * A code-signing requirement the broker's code must satisfy (docs/SECURITY.md,
   * "Trusting the broker"): a broker that does not is never heard, and the
   * connection fails with UntrustedBrokerError.
   */
  brokerRequirement?: string;
}

/** Shared by the connection and its event handler: the native client throws once cancelled. */
interface XpcClientState {
  closed: boolean;
}

class XpcClientConnection implements ClientConnection {
  readonly bufferedBytes = 0;
  readonly #client: NativeXpcClient;
  readonly #state: XpcClientState;

  constructor(client: NativeXpcClient, state: XpcClientState) {
    this.#client = client;
    this.#state = state;
  }

  send(op: ClientOp): boolean {
    // After the end, as a write to a closed socket: nothing goes out, and closed() has said why.
    if (this.#state.closed) return true;
    if (op.op === "req") this.#client.sendWithReply(op);
    else this.#client.send(op);
    return true;
  }

  drained(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    if (this.#state.closed) return;
    this.#state.closed = true;
    this.#client.cancel();
  }
}

export class XpcClientTransport implements ClientTransport {
  readonly address: string;
  readonly #options: XpcClientOptions;

  constructor(options: XpcClientOptions) {
    this.#options = options;
    this.address = typeof options.target === "string" ? `xpc:${options.target}` : "xpc:(endpoint)";
  }

  /** Fails at once off macOS, naming the transport that works there. */
  static assertAvailable(): void {
    if (loadNative().XpcClient === undefined) {
      throw new XpcbusError("transport_unavailable", "the xpc transport needs macOS; on Linux connect with the unix transport (a socket path)");
    }
  }

  connect(handlers: ClientConnectionHandlers): Promise<ClientConnection> {
    XpcClientTransport.assertAvailable();
    const { XpcClient } = loadNative();
    const state: XpcClientState = { closed: false };
    const client = new XpcClient!(
      this.#options.target,
      (event) => {
        if (state.closed) return;
        if ((event.kind === "message" || event.kind === "reply") && event.message !== undefined) {
          handlers.message(event.message);
        } else if (event.kind === "untrusted") {
          // Nothing the broker sent reached us; only the hello (our name) went out.
          state.closed = true;
          client.cancel();
          handlers.closed(
            new UntrustedBrokerError(
              this.address,
              undefined,
              `${this.address}: ${event.reason ?? "the broker does not satisfy the brokerRequirement"}; nothing it sent was read. Check the requirement (codesign -d -r- <broker binary>), or drop brokerRequirement / --broker-requirement to trust any broker on this service`,
            ),
          );
        } else if (event.kind === "interrupted" || event.kind === "invalid" || event.kind === "fault") {
          state.closed = true;
          client.cancel();
          handlers.closed(new ConnectionError("disconnected", event.reason ?? `XPC connection ${event.kind}`));
        }
      },
      {
        privileged: this.#options.privileged === true,
        ...(this.#options.brokerRequirement === undefined ? {} : { brokerRequirement: this.#options.brokerRequirement }),
      },
    );
    // XPC connects lazily: failures (no such service) arrive as "invalid" after the first send.
    return Promise.resolve(new XpcClientConnection(client, state));
  }
}
