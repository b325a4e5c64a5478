// The client's connection to the broker, kept across broker restarts: hello
// and welcome, reconnecting with backoff, the bounded buffer of ops made while
// disconnected, calls and their ids, permanent refusals, and the wait for
// outstanding calls that drain() needs. What travels over it (subscriptions,
// watches) belongs to its owner, which hears of each new connection and each
// delivery through ConnectionOwner. The line nats.js draws between its
// connection and its protocol handler.

import {
  BufferFullError,
  brokerErrorFromWire,
  ClosedError,
  ConnectionError,
  ConnectionRefusedError,
  BrokerError,
  UntrustedBrokerError,
  XpcbusError,
} from "./errors.js";
import type { ClientConnection, ClientTransport } from "./client-transport.js";
import { MAX_WRITE_BUFFER_BYTES, type ClientSettings } from "./client-options.js";
import { DEFAULT_MAX_PAYLOAD_BYTES, MAX_ID, PROTOCOL_VERSION, parseBrokerMessage, readAnswer } from "../protocol/index.js";
import type { AnsweredOp, Answers, BrokerLimits, BrokerMessageFault, ClientOp, DeliverMsg, GapMsg, SubAnswer, SubOp, WelcomeMsg } from "../protocol/index.js";

/** What #dispatch did with an op. */
const enum Dispatched {
  /** Kept in the reconnect buffer. */
  Buffered,
  Sent,
  /** Sent, and the transport's buffer is now past its high-water mark. */
  PastMark,
}

// Counted per buffered op besides its payload, for the reconnect buffer bound.
const OP_OVERHEAD_BYTES = 64;

export type ConnectionState = "connected" | "reconnecting" | "closed";

/**
 * A `sub` sent first on a new connection, and what to do with its `ok`:
 * `answered` runs as the answer is read, before any frame after it, since the
 * frames after it are the live messages of that subscription (§9.10).
 */
export interface ResumeSub {
  op: SubOp;
  answered(answer: SubAnswer): void;
}

/** What the connection tells the client built on it, from inside its handlers. */
export interface ConnectionOwner {
  /**
   * A new connection's `welcome` was accepted; nothing has been sent on it
   * yet. `brokerUid`: the broker's uid as the transport checked it (undefined
   * when the transport checks none).
   */
  welcomed(welcome: WelcomeMsg, brokerUid: number | undefined): void;
  /** Subscriptions to send first on a new connection, before the buffered ops. Their refusals go to brokerError. */
  resumeOps(): Iterable<ResumeSub>;
  /** The new connection is in use: resumed ops and the buffer are sent. */
  resumed(): void;
  deliver(message: DeliverMsg): void;
  /** Messages a resumed subscription asked for that the broker no longer keeps. */
  gap(message: GapMsg): void;
  /** An `err` no pending call was waiting for. */
  brokerError(error: BrokerError): void;
  dropped(info: { count: number; total: number }): void;
  disconnected(error: Error | undefined): void;
  reconnecting(info: { attempt: number; delayMs: number }): void;
  reconnected(info: { peer: number }): void;
  /** A reconnect attempt found an untrusted broker on the socket; the client sent it nothing and keeps backing off. */
  untrustedBroker(error: UntrustedBrokerError): void;
  /** The connection closed for good and failed its calls; end what hangs on it, then say so. */
  closed(error: Error | undefined): void;
}

interface PendingCall {
  /** The op it answers: how to read its `ok`. */
  readonly op: AnsweredOp;
  /** Runs as the answer is read, before the next frame is (resolve's callbacks run later, in a microtask). */
  readonly answered?: ((answer: unknown) => void) | undefined;
  resolve(answer: unknown): void;
  reject(error: Error): void;
  /** Ops sent while connected fail on disconnect; buffered ones were never sent. */
  sent: boolean;
}

type CallOp<K extends AnsweredOp> = Extract<ClientOp, { op: K }>;

export class BrokerConnection {
  readonly #transport: ClientTransport;
  readonly #settings: ClientSettings;
  readonly #owner: ConnectionOwner;
  #connection: ClientConnection | undefined;
  #state: ConnectionState = "reconnecting";
  #peerId = 0;
  #limits: BrokerLimits | undefined;
  #nextId = 1;
  readonly #pending = new Map<number, PendingCall>();
  /** Every call awaiting its reply, for drain(). */
  readonly #inflight = new Set<Promise<unknown>>();
  /** Ops waiting for a connection, in order, with their byte estimate. */
  #outbox: Array<{ op: ClientOp; bytes: number }> = [];
  #outboxBytes = 0;
  #closedError: Error | undefined;
  #resolveClosed!: (error: Error | undefined) => void;
  readonly #closed = new Promise<Error | undefined>((resolve) => {
    this.#resolveClosed = resolve;
  });
  #reconnectTimer: NodeJS.Timeout | undefined;
  /** A refusal the broker sent before closing (connection_denied…): the close that follows ends the client. */
  #refusal: ConnectionRefusedError | undefined;

  /** Does no I/O: open() connects. */
  constructor(transport: ClientTransport, settings: ClientSettings, owner: ConnectionOwner) {
    this.#transport = transport;
    this.#settings = settings;
    this.#owner = owner;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** The broker's id for this connection (changes after a reconnect). */
  get peerId(): number {
    return this.#peerId;
  }

  /** Limits announced by the broker in the last `welcome`. */
  get limits(): BrokerLimits | undefined {
    return this.#limits;
  }

  get requestTimeoutMs(): number {
    return this.#settings.requestTimeoutMs;
  }

  /** Opens the first connection; rejects (and closes) if the broker cannot be reached. */
  async open(): Promise<void> {
    try {
      await this.#establish();
    } catch (error) {
      this.shutdown(error as Error);
      throw error;
    }
  }

  /** Resolves when closed: with the error that closed it, or undefined for a requested close. */
  closed(): Promise<Error | undefined> {
    return this.#closed;
  }

  checkOpen(): void {
    if (this.#state === "closed") throw this.#closedError ?? new ClosedError();
  }

  checkPayload(bytes: Uint8Array): void {
    const max = this.#limits?.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    if (bytes.byteLength > max) {
      throw new XpcbusError("payload_too_large", `payload of ${bytes.byteLength} bytes is over the broker's limit of ${max}`);
    }
  }

  /**
   * Sends an op that expects `ok`/`err` (`pong` for `ping`), assigning its id;
   * resolves with the answer, read for that op. `answered`, when given, gets
   * the answer synchronously, before any frame that follows it is handled.
   */
  call<K extends AnsweredOp>(callOp: CallOp<K>, answered?: (answer: Answers[K]) => void): Promise<Answers[K]> {
    const op = callOp as ClientOp & { op: K };
    const id = this.#takeId();
    op.id = id;
    const call = new Promise<Answers[K]>((resolve, reject) => {
      const pending: PendingCall = {
        op: op.op,
        answered: answered as ((answer: unknown) => void) | undefined,
        resolve: resolve as (answer: unknown) => void,
        reject,
        sent: false,
      };
      this.#pending.set(id, pending);
      try {
        pending.sent = this.#dispatch(op) !== Dispatched.Buffered;
      } catch (error) {
        this.#pending.delete(id);
        reject(error);
      }
    });
    const tracked: Promise<unknown> = call.then(
      () => this.#inflight.delete(tracked),
      () => this.#inflight.delete(tracked),
    );
    this.#inflight.add(tracked);
    return call;
  }

  #takeId(): number {
    const id = this.#nextId;
    this.#nextId = this.#nextId >= MAX_ID ? 1 : this.#nextId + 1;
    return id;
  }

  /**
   * Sends a subscription again on a new connection, with an id so its `ok`
   * (and the `seq` in it) comes back. Not a call anyone awaits: a refusal is
   * the broker's error for the application (as an `err` without id used to
   * be); a lost connection is nothing to report, the next one resends it.
   */
  #resubscribe(connection: ClientConnection, resume: ResumeSub): void {
    const id = this.#takeId();
    resume.op.id = id;
    this.#pending.set(id, {
      op: "sub",
      answered: resume.answered as (answer: unknown) => void,
      resolve: () => {},
      reject: (error) => {
        if (error instanceof BrokerError) this.#owner.brokerError(error);
      },
      sent: true,
    });
    connection.send(resume.op);
  }

  /**
   * Sends an op without id. Returns a promise to wait for when the
   * transport's buffer is past its high-water mark, else undefined (nothing
   * to wait for, nothing allocated: the publish path). Throws what
   * #dispatch throws.
   */
  sendUnacked(op: ClientOp): Promise<void> | undefined {
    if (this.#dispatch(op) === Dispatched.PastMark && this.#connection !== undefined) return this.#connection.drained();
    return undefined;
  }

  /** Settles once every call made so far has its answer (or failed). */
  async callsSettled(): Promise<void> {
    await Promise.allSettled([...this.#inflight]);
  }

  /** Closes for good: calls fail with `error` (ClosedError when undefined), the owner ends what it holds. */
  shutdown(error: Error | undefined): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#closedError = error;
    clearTimeout(this.#reconnectTimer);
    const connection = this.#connection;
    this.#connection = undefined;
    connection?.close();
    const reason = error ?? new ClosedError();
    for (const pending of this.#pending.values()) pending.reject(reason);
    this.#pending.clear();
    this.#outbox = [];
    this.#outboxBytes = 0;
    this.#owner.closed(error);
    this.#resolveClosed(error);
  }

  /** Sends now when connected, else buffers. */
  #dispatch(op: ClientOp): Dispatched {
    const connection = this.#connection;
    if (this.#state === "connected" && connection !== undefined) {
      if (connection.bufferedBytes > MAX_WRITE_BUFFER_BYTES) {
        throw new BufferFullError(`over ${MAX_WRITE_BUFFER_BYTES} bytes are waiting to be written to the broker`);
      }
      return connection.send(op) ? Dispatched.Sent : Dispatched.PastMark;
    }
    if (!this.#settings.reconnect.enabled) throw new ConnectionError("not_connected", "not connected to the broker");
    const bytes = ("p" in op ? op.p.byteLength : 0) + OP_OVERHEAD_BYTES;
    if (this.#outboxBytes + bytes > this.#settings.reconnect.bufferBytes) {
      throw new BufferFullError(
        `the ${this.#settings.reconnect.bufferBytes}-byte buffer for messages sent while reconnecting is full`,
      );
    }
    this.#outbox.push({ op, bytes });
    this.#outboxBytes += bytes;
    return Dispatched.Buffered;
  }

  async #establish(): Promise<void> {
    let welcomed!: (welcome: WelcomeMsg) => void;
    let refused!: (error: Error) => void;
    const welcome = new Promise<WelcomeMsg>((resolve, reject) => {
      welcomed = resolve;
      refused = reject;
    });
    // The handlers run before connect() resolves only if the broker speaks first; `held` covers that.
    const held: { connection?: ClientConnection } = {};
    let greeted = false;
    let connection: ClientConnection;
    try {
      connection = await this.#transport.connect({
        message: (map) => {
          if (greeted) {
            this.#onMessage(map);
            return;
          }
          // Before welcome, the broker only refuses (too_many_peers, unsupported_version, shutdown…).
          const parsed = parseBrokerMessage(map);
          if ("message" in parsed) {
            if (parsed.message.op === "welcome") {
              greeted = true;
              welcomed(parsed.message);
            } else if (parsed.message.op === "err") {
              refused(brokerErrorFromWire(parsed.message.code, parsed.message.reason));
            }
          } else if (parsed.fault.op === "welcome") {
            // A welcome this client cannot read gives it no limits to keep to: not a connection.
            refused(new ConnectionError("connection_failed", `the broker's welcome could not be read: ${parsed.fault.reason}`));
          }
        },
        closed: (error) => {
          // Over XPC a broker that fails brokerRequirement is found on its first message, after connect.
          refused(error instanceof UntrustedBrokerError ? error : new ConnectionError("disconnected", "the broker closed the connection during hello", error));
          if (held.connection !== undefined && this.#connection === held.connection) this.#lost(error);
        },
      });
      held.connection = connection;
    } catch (cause) {
      // The transport's own refusals (an untrusted broker, no addon to check it with) are told as they are.
      if (cause instanceof XpcbusError && (cause.code === "untrusted_broker" || cause.code === "native_unavailable")) throw cause;
      throw new ConnectionError("connection_failed", `cannot connect to the broker at ${this.#transport.address}: ${(cause as Error).message}`, cause);
    }
    connection.send({ op: "hello", v: PROTOCOL_VERSION, name: this.#settings.name, ...(this.#settings.noEcho ? { noEcho: true } : {}), id: 0 });
    let accepted: WelcomeMsg;
    try {
      accepted = await welcome;
    } catch (error) {
      connection.close();
      throw error;
    }
    if (this.#state === "closed") {
      connection.close();
      return;
    }
    this.#connection = connection;
    this.#peerId = accepted.peer;
    this.#limits = accepted.limits;
    this.#owner.welcomed(accepted, connection.brokerUid);
    this.#state = "connected";
    // Subscriptions first, so nothing published by the buffered ops is missed.
    for (const resume of this.#owner.resumeOps()) this.#resubscribe(connection, resume);
    const outbox = this.#outbox;
    this.#outbox = [];
    this.#outboxBytes = 0;
    for (const { op } of outbox) {
      connection.send(op);
      if (op.id !== undefined) {
        const pending = this.#pending.get(op.id);
        if (pending !== undefined) pending.sent = true;
      }
    }
    this.#owner.resumed();
  }

  #onMessage(map: Record<string, unknown>): void {
    const parsed = parseBrokerMessage(map);
    if ("fault" in parsed) {
      this.#unreadable(parsed.fault);
      return;
    }
    const message = parsed.message;
    switch (message.op) {
      case "msg":
        this.#owner.deliver(message);
        return;
      case "ok":
      case "pong": {
        if (message.id === undefined) return;
        const pending = this.#pending.get(message.id);
        if (pending === undefined) return;
        this.#pending.delete(message.id);
        const read = readAnswer(pending.op, message);
        if ("answer" in read) {
          pending.answered?.(read.answer);
          pending.resolve(read.answer);
        } else pending.reject(unreadableAnswer(read.fault));
        return;
      }
      case "err": {
        const error = brokerErrorFromWire(message.code, message.reason);
        if (message.subject !== undefined) error.subject = message.subject;
        const pending = message.id === undefined ? undefined : this.#pending.get(message.id);
        if (pending !== undefined) {
          this.#pending.delete(message.id!);
          pending.reject(error);
          return;
        }
        // Errors that close carry no id (section 10); a permanent refusal ends the client when the close comes.
        if (message.id === undefined && error instanceof ConnectionRefusedError) this.#refusal = error;
        this.#owner.brokerError(error);
        return;
      }
      case "dropped":
        this.#owner.dropped({ count: message.count, total: message.total });
        return;
      case "gap":
        this.#owner.gap(message);
        return;
      case "bye":
        // The broker is going away; the close that follows triggers a reconnect.
        return;
      case "welcome":
        // Only ever the first message of a connection.
        return;
    }
  }

  /**
   * A broker message this client cannot read is ignored (an unknown op must
   * be, §3), except that an answer to a pending call fails that call rather
   * than leave it waiting for ever.
   */
  #unreadable(fault: BrokerMessageFault): void {
    if (fault.code !== "bad_field" || fault.id === undefined) return;
    if (fault.op !== "ok" && fault.op !== "err" && fault.op !== "pong") return;
    const pending = this.#pending.get(fault.id);
    if (pending === undefined) return;
    this.#pending.delete(fault.id);
    pending.reject(unreadableAnswer(fault));
  }

  #lost(error: Error | undefined): void {
    this.#connection = undefined;
    if (this.#state === "closed") return;
    const refusal = this.#refusal;
    if (refusal !== undefined) {
      // Reconnecting would be refused the same way: close with the broker's reason, failing every call with it.
      this.#owner.disconnected(refusal);
      this.shutdown(refusal);
      return;
    }
    this.#state = "reconnecting";
    for (const [id, pending] of this.#pending) {
      if (!pending.sent) continue;
      this.#pending.delete(id);
      pending.reject(new ConnectionError("disconnected", "the connection to the broker was lost before the reply came", error));
    }
    this.#owner.disconnected(error);
    if (!this.#settings.reconnect.enabled) {
      this.shutdown(new ConnectionError("disconnected", "the connection to the broker was lost", error));
      return;
    }
    this.#scheduleReconnect(1);
  }

  #scheduleReconnect(attempt: number): void {
    const { initialDelayMs, maxDelayMs, maxAttempts } = this.#settings.reconnect;
    if (maxAttempts > 0 && attempt > maxAttempts) {
      this.shutdown(new ConnectionError("connection_failed", `gave up reconnecting to ${this.#transport.address} after ${maxAttempts} attempts`));
      return;
    }
    const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(attempt - 1, 20));
    // Full jitter in the upper half: clients of a restarted broker do not all come back at once.
    const delayMs = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.#owner.reconnecting({ attempt, delayMs });
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#establish().then(
        () => {
          if (this.#state === "connected") this.#owner.reconnected({ peer: this.#peerId });
        },
        (error: unknown) => {
          if (this.#state === "closed") return;
          // Refused at hello for who this client is (e.g. a broker restarted with a stricter policy): stop.
          if (error instanceof ConnectionRefusedError) this.shutdown(error);
          else {
            // An untrusted broker on the path is not a refusal of this client: the
            // real broker may come back there after a restart. Say so, keep backing off.
            if (error instanceof UntrustedBrokerError) this.#owner.untrustedBroker(error);
            this.#scheduleReconnect(attempt + 1);
          }
        },
      );
    }, delayMs);
  }
}

/** An answer the broker sent but this client cannot read: reported as the broker's `internal`, as an unknown code is. */
function unreadableAnswer(fault: BrokerMessageFault): BrokerError {
  return new BrokerError("internal", `the broker's answer could not be read: ${fault.reason}`);
}
