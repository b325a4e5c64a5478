// `xpcbus daemon`: the broker in the foreground, until SIGINT or SIGTERM.

import { InvalidArgumentError, XpcbusError } from "../../client-sdk/index.js";
import type { BrokerLimitOptions } from "../core/options.js";
import { DEFAULT_BROKER_LIMITS } from "../core/options.js";
import { startDaemon } from "../daemon-process.js";
import type { LevelWithSilent } from "pino";
import { readConfigFile, type DaemonConfig } from "../config-file.js";
import { readPolicyFile } from "../policy-file.js";
import { createLogger, LOG_LEVEL_ENV, parseLogLevel } from "../logger.js";
import { CliError } from "./cli-error.js";
import { EXIT_ERROR, EXIT_USAGE } from "./exit-codes.js";
import { parseInteger } from "./integer-option.js";

export interface DaemonCommandOptions {
  socket?: string;
  system?: boolean;
  socketMode?: string;
  logLevel?: string;
  stateFile?: string;
  notifyPrefix?: string;
  service?: string;
  codeSigningRequirement?: string;
  config?: string;
  policy?: string;
  slowConsumer?: string;
  limit?: string[];
  store?: string;
  durability?: string;
  storeReset?: boolean;
  bridge?: string;
}

function parseMode(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^0?[0-7]{3}$/.test(text)) throw new CliError(`--socket-mode "${text}" is not an octal mode such as 0600 or 0660`, EXIT_USAGE);
  return Number.parseInt(text, 8);
}

/** `--limit maxPeers=100` (repeatable): any named broker limit (docs/PROTOCOL.md, "Limits"). */
function parseLimitFlags(flags: string[] | undefined): Partial<BrokerLimitOptions> {
  const limits: Partial<BrokerLimitOptions> = {};
  for (const flag of flags ?? []) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(flag);
    if (match === null) throw new CliError(`--limit "${flag}" is not NAME=INTEGER`, EXIT_USAGE);
    const [, name, value] = match as unknown as [string, string, string];
    if (!Object.hasOwn(DEFAULT_BROKER_LIMITS, name)) {
      throw new CliError(`--limit: unknown limit "${name}"; known: ${Object.keys(DEFAULT_BROKER_LIMITS).join(", ")}`, EXIT_USAGE);
    }
    limits[name as keyof BrokerLimitOptions] = parseInteger(value, { min: 1 }, (problem) => {
      throw new CliError(`--limit "${flag}": the value ${problem}`, EXIT_USAGE);
    });
  }
  return limits;
}

/** The log level in force: --log-level, else the config file's, else $XPCBUS_LOG_LEVEL, else info. */
function logLevelFrom(options: DaemonCommandOptions, config: DaemonConfig): LevelWithSilent {
  return parseLogLevel(options.logLevel ?? config.logLevel ?? process.env[LOG_LEVEL_ENV]);
}

function parseSlowConsumer(text: string | undefined): "drop" | "disconnect" | undefined {
  if (text === undefined || text === "drop" || text === "disconnect") return text;
  throw new CliError(`--slow-consumer "${text}" is not drop or disconnect`, EXIT_USAGE);
}

function parseDurability(text: string | undefined): "normal" | "full" | undefined {
  if (text === undefined || text === "normal" || text === "full") return text;
  throw new CliError(`--durability "${text}" is not normal or full`, EXIT_USAGE);
}

export async function daemonCommand(options: DaemonCommandOptions): Promise<void> {
  let level;
  try {
    level = logLevelFrom(options, options.config === undefined ? {} : readConfigFile(options.config));
  } catch (error) {
    throw new CliError((error as Error).message, EXIT_USAGE);
  }
  const logger = createLogger(level);
  let policy;
  try {
    policy = options.policy === undefined ? undefined : readPolicyFile(options.policy);
  } catch (error) {
    throw new CliError((error as Error).message, EXIT_USAGE);
  }
  let daemon;
  try {
    daemon = await startDaemon({
      socket: options.socket,
      system: options.system,
      socketMode: parseMode(options.socketMode),
      stateFile: options.stateFile,
      notifyPrefix: options.notifyPrefix,
      slowConsumer: parseSlowConsumer(options.slowConsumer),
      policy,
      service: options.service,
      codeSigningRequirement: options.codeSigningRequirement,
      limits: parseLimitFlags(options.limit),
      store: options.store,
      durability: parseDurability(options.durability),
      storeReset: options.storeReset,
      bridge: options.bridge,
      logger,
    });
  } catch (error) {
    if (error instanceof InvalidArgumentError || (error instanceof XpcbusError && error.code === "transport_unavailable")) {
      throw new CliError(error.message, EXIT_USAGE);
    }
    if (error instanceof XpcbusError && error.code === "socket_unusable" && options.system === true && process.getuid?.() !== 0) {
      // /run/xpcbus is root's: the usual cause is a missing sudo, which the OS error does not say.
      throw new CliError(`the system broker (--system) needs root: ${error.message}; run it as root, or give --socket a path this user may write`, EXIT_ERROR);
    }
    if (error instanceof XpcbusError) throw new CliError(error.message, EXIT_ERROR);
    throw error;
  }
  // SIGHUP: reload the policy, the config file and the bridge file, each whole or not at all; keep every connection.
  const onHangup = (): void => {
    if (options.bridge !== undefined) {
      daemon.reloadBridge().then(
        () => logger.info({ bridge: options.bridge }, "SIGHUP: bridge reloaded"),
        (error: Error) => logger.error({ bridge: options.bridge, reason: error.message }, "SIGHUP: bridge file refused; the running bridge stays"),
      );
    }
    if (options.policy !== undefined) {
      try {
        daemon.broker.setPolicy(readPolicyFile(options.policy));
        logger.info({ policy: options.policy }, "SIGHUP: policy reloaded");
      } catch (error) {
        logger.error({ policy: options.policy, reason: (error as Error).message }, "SIGHUP: policy refused; the previous one stays");
      }
    }
    if (options.config === undefined) {
      if (options.policy === undefined && options.bridge === undefined) {
        logger.info("SIGHUP: nothing to reload (the daemon was started without --config, --policy or --bridge)");
      }
      return;
    }
    try {
      const next = logLevelFrom(options, readConfigFile(options.config));
      daemon.broker.setLogLevel(next);
      logger.info({ config: options.config, logLevel: next }, "SIGHUP: configuration reloaded");
    } catch (error) {
      logger.error({ config: options.config, reason: (error as Error).message }, "SIGHUP: configuration refused; the previous one stays");
    }
  };
  process.on("SIGHUP", onHangup);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      logger.info({ signal }, "signal received");
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      process.off("SIGHUP", onHangup);
      void daemon.stop().then(resolve);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}
