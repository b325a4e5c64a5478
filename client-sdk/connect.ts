// connect(): the one way to get a Client. Options are checked here, by name,
// so a misspelt option fails loudly instead of silently taking a default.

import { basename } from "node:path";
import { Client } from "./client.js";
import { DEFAULT_RECONNECT, type ReconnectOptions } from "./client-options.js";
import type { ClientTransport } from "./client-transport.js";
import { InvalidArgumentError } from "./errors.js";
import { DEFAULT_REQUEST_TIMEOUT_MS, MAX_CLIENT_NAME_BYTES, DEFAULT_SERVICE_NAME } from "../protocol/index.js";
import { defaultSocketPath, SOCKET_ENV, SYSTEM_SOCKET_PATH } from "./paths.js";
import { brokerUidFromEnv, ownUid, parseBrokerUid } from "./broker-trust.js";
import { UnixClientTransport } from "./unix-client-transport.js";
import { XpcClientTransport } from "./xpc-client-transport.js";
import type { NativeXpcObject } from "../native/index.js";

export interface ConnectOptions {
  /** Broker socket path (default: $XPCBUS_SOCKET, else the per-user default). */
  socket?: string;
  /**
   * Unix socket: one more uid whose broker this client talks to, besides its
   * own and root's (e.g. a system broker's service user); default
   * $XPCBUS_BROKER_UID. A broker of any other uid gets nothing and connect()
   * fails with UntrustedBrokerError (docs/SECURITY.md, "Trusting the broker").
   */
  brokerUid?: number;
  /**
   * XPC (macOS): a code-signing requirement the broker's code must satisfy,
   * e.g. `anchor apple generic and certificate leaf[subject.OU] = "TEAMID"`.
   * A broker that does not is never heard and connect() fails with
   * UntrustedBrokerError (docs/PROTOCOL.md §14).
   */
  brokerRequirement?: string;
  /**
   * "unix" (the default unless `service` or `endpoint` is given), "xpc"
   * (macOS: the broker's mach service), or a ClientTransport of your own.
   */
  transport?: "unix" | "xpc" | ClientTransport;
  /** XPC: the broker's mach service name (default io.xpcbus.broker). */
  service?: string;
  /** XPC: the broker is a system daemon (launchd's system domain). */
  privileged?: boolean;
  /** XPC: an anonymous listener's endpoint, for a broker in this process (tests). */
  endpoint?: NativeXpcObject;
  /** Name shown in the broker's status and logs (default: the script's file name). */
  name?: string;
  /** Reconnect behaviour; `false` disables reconnecting. */
  reconnect?: Partial<ReconnectOptions> | false;
  /** Default timeout of request(), in ms (default 5000). */
  requestTimeoutMs?: number;
  /** Never be delivered this client's own publishes (`hello.noEcho`, docs/PROTOCOL.md §5.1); default false. */
  noEcho?: boolean;
}

const OPTION_NAMES = ["socket", "brokerUid", "brokerRequirement", "transport", "service", "privileged", "endpoint", "name", "reconnect", "requestTimeoutMs", "noEcho"];

function chooseTransport(options: ConnectOptions): ClientTransport {
  const choice = options.transport ?? (options.service !== undefined || options.endpoint !== undefined ? "xpc" : "unix");
  if (typeof choice === "object") return choice;
  if (choice === "unix") {
    if (options.service !== undefined || options.endpoint !== undefined) {
      throw new InvalidArgumentError('options "service" and "endpoint" belong to the xpc transport');
    }
    if (options.brokerRequirement !== undefined) throw new InvalidArgumentError('option "brokerRequirement" belongs to the xpc transport (the Unix socket checks the broker\'s uid: brokerUid)');
    const brokerUid = options.brokerUid === undefined ? brokerUidFromEnv() : parseBrokerUid(options.brokerUid, 'option "brokerUid"');
    return new UnixClientTransport(options.socket ?? defaultSocketPath(), { brokerUid, directoryOwner: defaultDirectoryOwner(options) });
  }
  if (options.brokerUid !== undefined) throw new InvalidArgumentError('option "brokerUid" belongs to the unix transport');
  if (choice !== "xpc") throw new InvalidArgumentError(`option "transport" must be "unix", "xpc" or a ClientTransport (got ${String(choice)})`);
  if (options.socket !== undefined) throw new InvalidArgumentError('option "socket" belongs to the unix transport');
  XpcClientTransport.assertAvailable();
  if (options.brokerRequirement !== undefined && (typeof options.brokerRequirement !== "string" || options.brokerRequirement === "")) {
    throw new InvalidArgumentError('option "brokerRequirement" must be a non-empty code-signing requirement');
  }
  return new XpcClientTransport({
    target: options.endpoint ?? options.service ?? DEFAULT_SERVICE_NAME,
    privileged: options.privileged,
    ...(options.brokerRequirement === undefined ? {} : { brokerRequirement: options.brokerRequirement }),
  });
}
/**
 * Who must own the socket's directory when the path is the default one (no
 * `socket` option, no $XPCBUS_SOCKET): this process's uid for the per-user
 * path, root for the system one. A path named on purpose is not checked: its
 * namer chose it, and the broker's uid is checked on it all the same.
 */
function defaultDirectoryOwner(options: ConnectOptions): number | undefined {
  // The system path is a default too, however it was named (`--system`).
  if (options.socket !== undefined) return options.socket === SYSTEM_SOCKET_PATH ? 0 : undefined;
  const fromEnv = process.env[SOCKET_ENV];
  if (fromEnv !== undefined && fromEnv !== "") return undefined;
  return ownUid();
}

const RECONNECT_NAMES = Object.keys(DEFAULT_RECONNECT);

function defaultName(): string {
  const script = process.argv[1];
  return `${script !== undefined ? basename(script) : "node"}[${process.pid}]`;
}

function positiveInteger(name: string, value: unknown, allowZero = false): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new InvalidArgumentError(`option "${name}" must be a ${allowZero ? "non-negative" : "positive"} integer (got ${String(value)})`);
  }
  return value;
}

function parseReconnect(input: ConnectOptions["reconnect"]): ReconnectOptions {
  if (input === false) return { ...DEFAULT_RECONNECT, enabled: false };
  const out: ReconnectOptions = { ...DEFAULT_RECONNECT };
  if (input === undefined) return out;
  for (const [key, value] of Object.entries(input)) {
    if (!RECONNECT_NAMES.includes(key)) {
      throw new InvalidArgumentError(`unknown reconnect option "${key}"; known: ${RECONNECT_NAMES.join(", ")}`);
    }
    if (value === undefined) continue;
    if (key === "enabled") {
      if (typeof value !== "boolean") throw new InvalidArgumentError('reconnect option "enabled" must be a boolean');
      out.enabled = value;
    } else {
      out[key as Exclude<keyof ReconnectOptions, "enabled">] = positiveInteger(`reconnect.${key}`, value, key === "maxAttempts");
    }
  }
  if (out.initialDelayMs > out.maxDelayMs) throw new InvalidArgumentError("reconnect.initialDelayMs must not exceed reconnect.maxDelayMs");
  return out;
}

/** Connects to the broker; rejects with ConnectionError when it cannot be reached. */
export async function connect(options: ConnectOptions = {}): Promise<Client> {
  for (const key of Object.keys(options)) {
    if (!OPTION_NAMES.includes(key)) throw new InvalidArgumentError(`unknown connect option "${key}"; known: ${OPTION_NAMES.join(", ")}`);
  }
  const name = options.name ?? defaultName();
  if (Buffer.byteLength(name) > MAX_CLIENT_NAME_BYTES) throw new InvalidArgumentError(`option "name" is over ${MAX_CLIENT_NAME_BYTES} bytes`);
  if (options.noEcho !== undefined && typeof options.noEcho !== "boolean") throw new InvalidArgumentError('option "noEcho" must be a boolean');
  const transport = chooseTransport(options);
  const client = new Client(transport, {
    name,
    noEcho: options.noEcho === true,
    reconnect: parseReconnect(options.reconnect),
    requestTimeoutMs:
      options.requestTimeoutMs === undefined ? DEFAULT_REQUEST_TIMEOUT_MS : positiveInteger("requestTimeoutMs", options.requestTimeoutMs),
  });
  await client.open();
  return client;
}
