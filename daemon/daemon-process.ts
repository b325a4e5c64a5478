// The broker as a process: resolves where to listen, prepares the directory,
// wires the core to the Unix socket transport, says "ready", and shuts down
// cleanly on SIGINT/SIGTERM. Everything here is the daemon's; the core knows
// none of it.

import { readdirSync } from "node:fs";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { defaultSocketPath, SOCKET_ENV, SYSTEM_SOCKET_PATH } from "../client-sdk/index.js";
import { Broker, type SlowConsumerPolicy } from "./core/broker.js";
import { ownerOnlyPolicy, type Policy } from "./core/policy.js";
import { loadNative } from "../native/index.js";
import type { BrokerLimitOptions } from "./core/options.js";
import { fileSequenceFloor } from "./sequence-file.js";
import { prepareSocketDir } from "./socket-dir.js";
import { UnixServerTransport } from "./transports/unix-server-transport.js";
import { DEFAULT_SERVICE_NAME, notifyNameProblem, InvalidArgumentError, XpcbusError } from "../protocol/index.js";
import { parseLimits } from "./core/options.js";
import type { Notifier } from "./core/notifier.js";
import { DarwinNotifier } from "./notify/darwin-notifier.js";
import { XpcServerTransport } from "./transports/xpc-server.js";
import type { ServerTransport } from "./transports/server-transport.js";
import { TableNotifier } from "./notify/table-notifier.js";
import { openDaemonStore } from "./store/daemon-store.js";
import { readBridgeFile } from "./bridge/bridge-config.js";
import { bridgePolicyRule } from "./bridge/bridge-identity.js";
import type { BridgeConfig } from "./bridge/bridge-types.js";
import type { NatsBridge } from "./bridge/nats-bridge.js";

/** How long a shutdown waits for peers to take their `bye` before the process exits anyway. */
export const SHUTDOWN_GRACE_MS = 1_500;

export interface DaemonOptions {
  /** Socket path; the per-user (or, with `system`, the system) default when omitted. */
  socket?: string;
  /** Run as the machine-wide broker: /run/xpcbus/broker.sock, directory 0755. */
  system?: boolean;
  /** Mode of the socket file (default 0o600). */
  socketMode?: number;
  /** File that keeps sequence numbers growing across restarts (default `<socket>.seq`). */
  stateFile?: string;
  /**
   * Prefix of the notification names posted on publish (default: the service
   * name, `service` or io.xpcbus.broker; on macOS a per-user broker adds
   * `user.uid.<uid>.` in front so other users cannot post its names).
   */
  notifyPrefix?: string;
  /**
   * macOS: also listen on this launchd mach service (the job's MachServices
   * must name it). Refused elsewhere: Linux has only the Unix socket.
   */
  service?: string;
  /** macOS, with `service`: the code-signing requirement every XPC peer must satisfy. */
  codeSigningRequirement?: string;
  /** Who may connect and do what (default: this process's uid and root, with every right). */
  policy?: Policy;
  /** What to do with a peer that does not read: drop its oldest messages (default) or disconnect it. */
  slowConsumer?: SlowConsumerPolicy;
  /** The environment to read systemd's LISTEN_FDS/LISTEN_PID from (default process.env; the variables are removed once used). */
  env?: NodeJS.ProcessEnv;
  limits?: Partial<BrokerLimitOptions>;
  /**
   * Where retained values and history persist: "memory" (nowhere), or the
   * SQLite file's path. Default: the per-user state directory for a broker on
   * its default socket, `<socket>.store.db` for any other (store/store-path.ts);
   * without better-sqlite3 the default falls back to memory with a warning.
   */
  store?: string;
  /** "normal" (default): survives a crash of the broker; "full": also a power loss. */
  durability?: "normal" | "full";
  /** Move a corrupt or newer-schema store aside and start an empty one, instead of refusing to start. */
  storeReset?: boolean;
  /**
   * A bridge file (docs/OPERATIONS.md, "Bridging to NATS"): carry its subjects
   * to and from NATS. Read before anything starts; a bad file refuses the start.
   */
  bridge?: string;
  logger: Logger;
}

export interface RunningDaemon {
  readonly broker: Broker;
  readonly socketPath: string;
  /** Stops accepting, says bye to every peer, waits for them (bounded), removes the socket. */
  stop(reason?: string): Promise<void>;
  /**
   * Re-reads the --bridge file (SIGHUP): a good one replaces the running
   * bridge (the old one closes first); a bad one rejects with its problems and
   * the running bridge stays. Resolves at once without --bridge.
   */
  reloadBridge(): Promise<void>;
}

/**
 * Where to listen. `isDefault` is true only for the paths xpcbus chose itself,
 * whose directory it may create, own and chmod; a path the user chose (flag or
 * $XPCBUS_SOCKET) keeps its directory as the user made it.
 */
export function resolveSocketPath(
  options: Pick<DaemonOptions, "socket" | "system">,
  env: NodeJS.ProcessEnv = process.env,
): { path: string; isDefault: boolean } {
  if (options.socket !== undefined) return { path: options.socket, isDefault: false };
  if (options.system === true) return { path: SYSTEM_SOCKET_PATH, isDefault: true };
  const fromEnv = env[SOCKET_ENV];
  if (fromEnv !== undefined && fromEnv !== "") return { path: fromEnv, isDefault: false };
  return { path: defaultSocketPath(env), isDefault: true };
}

export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const log = options.logger;
  if (options.service !== undefined && process.platform !== "darwin") {
    throw new XpcbusError("transport_unavailable", "--service needs macOS (an XPC mach service); on Linux the broker listens on its Unix socket");
  }
  if (options.codeSigningRequirement !== undefined && options.service === undefined) {
    throw new XpcbusError("transport_unavailable", "--code-signing-requirement applies to XPC peers: give --service too (macOS)");
  }
  // Before anything is touched: a bad bridge file refuses the start, its problems as they are.
  const bridgeConfig: BridgeConfig | undefined = options.bridge === undefined ? undefined : readBridgeFile(options.bridge);
  const { path, isDefault } = resolveSocketPath(options);
  prepareSocketDir(dirname(path), { mode: options.system === true ? 0o755 : 0o700, strict: isDefault });
  const limits = parseLimits(options.limits);
  const inheritedFd = takeActivationSocket(options.env ?? process.env);
  if (inheritedFd !== undefined) log.info({ fd: inheritedFd, socket: path }, "using the listening socket from systemd (socket activation)");
  const transport = new UnixServerTransport({
    path,
    socketMode: options.socketMode,
    maxFrameBytes: limits.maxFrameBytes,
    inheritedFd,
    logger: log,
  });
  // Refuse before touching anything a running broker owns (its notify table).
  await transport.checkAddress();
  // With a store, the broker keeps its reservations there and only reads this
  // floor (the legacy <socket>.seq file, or the clock): a store's first start
  // still begins above everything the file-based broker issued.
  const sequenceFloor = fileSequenceFloor(options.stateFile ?? `${path}.seq`, log);
  const store = openDaemonStore({
    store: options.store,
    durability: options.durability,
    reset: options.storeReset === true,
    system: options.system === true,
    socketPath: path,
    // A service manager passes the default path explicitly (launchd/program.ts): its store still belongs in the state directory.
    socketPathIsDefault: isDefault || path === (options.system === true ? SYSTEM_SOCKET_PATH : defaultSocketPath(options.env ?? process.env)),
    log,
    createdAtSeq: sequenceFloor.floor,
  });
  let notifier: Notifier | undefined;
  let broker: Broker;
  let bridge: NatsBridge | undefined;
  try {
    notifier = createNotifier(options, path, limits.maxNotifySlots, limits.maxNotifyStates);
    broker = new Broker({
      limits,
      logger: log,
      pid: process.pid,
      ownerUid: process.getuid?.(),
      sequenceFloor,
      store,
      notifier,
      slowConsumer: options.slowConsumer,
      policy: options.policy ?? defaultPolicy(bridgeConfig),
      codeSigningCheck: process.platform === "darwin" ? loadNative().codeSatisfies : undefined,
      describeProcess,
      bridgeStatus: () => bridge?.status(),
    });
  } catch (error) {
    notifier?.close();
    store?.close();
    throw error;
  }
  const transports: ServerTransport[] = [transport];
  let stop: ((reason?: string) => Promise<void>) | undefined;
  if (options.service !== undefined) {
    transports.push(
      new XpcServerTransport({
        service: options.service,
        codeSigningRequirement: options.codeSigningRequirement,
        logger: log,
        onDrain: () => void stop?.("launchd is terminating the job"),
      }),
    );
  }
  try {
    for (const t of transports) await t.start(broker);
  } catch (error) {
    for (const t of transports) await t.stopAccepting();
    notifier.close();
    store?.close();
    throw error;
  }
  // After the transports: the broker serves locally whatever NATS does (start() never waits for it).
  if (bridgeConfig !== undefined) bridge = await startBridge(bridgeConfig, broker, log);
  log.info(
    {
      socket: path,
      service: options.service,
      transports: transports.map((t) => t.name),
      notify: { ...notifier.info, instance: undefined },
      store: store?.description ?? { kind: "memory" },
    },
    "ready",
  );

  let stopping: Promise<void> | undefined;
  stop = (reason = "the broker is shutting down"): Promise<void> => {
    stopping ??= (async () => {
      log.info({ reason }, "shutting down");
      // First, so no import lands in a broker that is saying bye.
      const closing = bridge;
      bridge = undefined;
      await closing?.close();
      for (const t of transports) await t.stopAccepting();
      broker.close(reason);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(transports.map((t) => t.drained())),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, SHUTDOWN_GRACE_MS);
        }),
      ]);
      clearTimeout(timer);
      for (const t of transports) t.close?.();
      notifier.close();
      // After the broker closed and the peers left: no turn commits any more.
      store?.close();
      log.info("stopped");
    })();
    return stopping;
  };
  // One reload at a time: two quick SIGHUPs must not leave two bridges running.
  let reloading: Promise<void> = Promise.resolve();
  const reloadBridge = (): Promise<void> => {
    const next = reloading.then(async () => {
      if (options.bridge === undefined || stopping !== undefined) return;
      // A bad file throws here, before the running bridge is touched.
      const config = readBridgeFile(options.bridge);
      const previous = bridge;
      bridge = undefined;
      await previous?.close();
      if (stopping !== undefined) return;
      // Without --policy the bridge's rights follow its file.
      if (options.policy === undefined) broker.setPolicy(defaultPolicy(config));
      const started = await startBridge(config, broker, log);
      // stop() began while it started: it did not see this one.
      if (stopping !== undefined) await started.close();
      else bridge = started;
    });
    reloading = next.catch(() => undefined);
    return next;
  };
  return { broker, socketPath: path, stop, reloadBridge };
}

/** The bridge, loaded only when one is configured (the `nats` client is not small). */
async function startBridge(config: BridgeConfig, broker: Broker, log: Logger): Promise<NatsBridge> {
  const { NatsBridge, PROCESS_ORIGIN } = await import("./bridge/nats-bridge.js");
  return NatsBridge.start({ config, broker, log, origin: PROCESS_ORIGIN });
}

/** Without --policy: this uid and root with every right, and the bridge (if any) with what its file implies. */
function defaultPolicy(bridge: BridgeConfig | undefined): Policy {
  const policy = ownerOnlyPolicy(process.getuid?.() ?? 0);
  if (bridge === undefined) return policy;
  return { ...policy, rules: [...policy.rules, bridgePolicyRule(bridge)] };
}

function createNotifier(options: DaemonOptions, socketPath: string, slots: number, maxStates: number): Notifier {
  const uid = process.getuid?.() ?? 0;
  const perUserDarwin = process.platform === "darwin" && options.system !== true;
  // The service name, so a dev broker (io.xpcbus.broker.dev) and the installed one never share names.
  const base = options.service ?? DEFAULT_SERVICE_NAME;
  const prefix = options.notifyPrefix ?? (perUserDarwin ? `user.uid.${uid}.${base}` : base);
  const problem = notifyNameProblem(prefix);
  if (problem !== undefined) throw new InvalidArgumentError(`notify prefix: ${problem}`);
  if (process.platform === "darwin") return new DarwinNotifier(prefix, slots, { maxStates });
  return new TableNotifier({ path: `${socketPath}.notify`, prefix, slots, maxStates });
}

/** First fd systemd passes (sd_listen_fds(3)). */
const SD_LISTEN_FDS_START = 3;

/**
 * The listening socket systemd passed, if it passed one to this very process
 * (LISTEN_PID): fd 3. The variables are removed so children do not take
 * them for their own.
 */
export function takeActivationSocket(env: NodeJS.ProcessEnv): number | undefined {
  const pid = env["LISTEN_PID"];
  const count = Number(env["LISTEN_FDS"]);
  if (pid === undefined || Number(pid) !== process.pid || !Number.isInteger(count) || count < 1) return undefined;
  delete env["LISTEN_PID"];
  delete env["LISTEN_FDS"];
  delete env["LISTEN_FDNAMES"];
  return SD_LISTEN_FDS_START;
}

/** What `status` reports about this process, for operators and the churn tests. */
function describeProcess(): Record<string, number> {
  // Only where node runs with --expose-gc (the churn tests, a soak): the heap
  // after a collection, which is the figure that shows a leak.
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc === "function") gc();
  const memory = process.memoryUsage();
  let fds = -1;
  try {
    fds = readdirSync("/proc/self/fd").length;
  } catch {
    // Not Linux: no cheap count.
  }
  return { rss: memory.rss, heapUsed: memory.heapUsed, arrayBuffers: memory.arrayBuffers, fds };
}
