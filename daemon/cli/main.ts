#!/usr/bin/env node
// `xpcbus`: the daemon and the client commands. Errors are one line on
// stderr (a stack trace only with --verbose) and a documented exit code.

import { Command, CommanderError, Option } from "commander";
import { PACKAGE_VERSION } from "../core/version.js";
import { DEFAULT_STATUS_INTERVAL_MS, EXEC_TIMEOUT_MS, MAX_CONCURRENT_EXECS, MAX_EXEC_OUTPUT_BYTES, MAX_WAITING_EXECS } from "./cli-limits.js";
import { EXIT_OK, EXIT_USAGE } from "./exit-codes.js";
import { integerOption, MAX_TIMER_MS } from "./integer-option.js";

// A reader that stops early (`xpcbus sub … | head`, `xpcbus --help | head`)
// closes the pipe: that ends the command quietly, as it does for any Unix tool.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(EXIT_OK);
  throw error;
});

// Each command's code is loaded only when that command runs: start-up pays
// for commander and these declarations, not for the plist library, pino or
// the broker core that other commands need (`xpcbus pub` would otherwise
// load them all; bench/cli-startup.bench.ts measures it). The modules are
// named here as loaders.
const clientCommands = () => import("./client-commands.js");
const replyCommands = () => import("./reply-command.js");
const statusWatch = () => import("./status-watch.js");
const daemonCommands = () => import("./daemon-command.js");
const serviceCommands = () => import("./service-commands.js");
const policyCommands = () => import("./policy-commands.js");
const notifyCommands = () => import("./notify-commands.js");
const bridgeCommands = () => import("./bridge-commands.js");

/**
 * A commander action that loads `load()` and calls its export `name` with
 * what commander passes (the arguments, the options, the command).
 */
function lazy<M, K extends keyof M>(load: () => Promise<M>, name: K): (...args: unknown[]) => Promise<void> {
  return async (...args) => {
    const command = (await load())[name] as (...a: unknown[]) => void | Promise<void>;
    await command(...args);
  };
}

const positiveInt = integerOption({ min: 1 });
/** A timeout the CLI waits out itself with setTimeout, which cannot wait longer. */
const timerMs = integerOption({ min: 1, max: MAX_TIMER_MS });
/** A pid, uid or gid. */
const id = integerOption({ min: 0 });

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

const SERVICE_HELP = "macOS: reach the broker over XPC at this mach service (e.g. io.xpcbus.broker)";
const BROKER_REQUIREMENT_HELP = "macOS, with --service: a code-signing requirement the broker's code must satisfy (else: untrusted_broker, exit 1)";
const BROKER_UID_HELP =
  "also trust a broker running as this uid (default: $XPCBUS_BROKER_UID); without it only a broker of your own uid or root's is sent anything";
const SOCKET_HELP = "broker socket path (default: $XPCBUS_SOCKET, else $XDG_RUNTIME_DIR/xpcbus/broker.sock or /tmp/xpcbus-<uid>/broker.sock)";

/** Where the broker is and which one to trust: the options every client command takes. */
function brokerOptions(command: Command): Command {
  return command
    .option("--socket <path>", SOCKET_HELP)
    .option("--service <name>", SERVICE_HELP)
    .option("--broker-uid <uid>", BROKER_UID_HELP, id)
    .option("--broker-requirement <req>", BROKER_REQUIREMENT_HELP);
}

function buildProgram(): Command {
  const program = new Command("xpcbus")
    .description("local pub/sub event broker")
    .version(PACKAGE_VERSION)
    .option("--verbose", "print stack traces with errors")
    .addHelpText(
      "after",
      "\nExit codes: 0 ok, 1 error (refused, not found, no reply), 2 usage, 3 cannot reach the broker.",
    )
    .exitOverride();

  program
    .command("daemon")
    .description("run the broker in the foreground")
    .option("--socket <path>", SOCKET_HELP)
    .option("--service <name>", "macOS: also listen on this launchd mach service (the job's MachServices must name it)")
    .option("--code-signing-requirement <req>", "macOS, with --service: a requirement every XPC peer must satisfy")
    .option("--system", "run the system-wide broker on /run/xpcbus/broker.sock")
    .option("--socket-mode <mode>", "octal mode of the socket file (default 0600)")
    .option("--state-file <path>", "where sequence numbers persist across restarts (default <socket>.seq)")
    .option("--log-level <level>", "fatal|error|warn|info|debug|trace|silent (default: the config's, $XPCBUS_LOG_LEVEL, or info)")
    .option("--config <file>", "JSON settings reloaded on SIGHUP: { \"logLevel\": \"debug\" }")
    .option("--notify-prefix <prefix>", "prefix of the notification names posted on publish (default io.xpcbus.broker)")
    .option("--policy <file>", "who may connect and do what (docs/SECURITY.md); reloaded on SIGHUP. Default: this uid and root only")
    .option("--slow-consumer <policy>", "a peer that does not read: drop its oldest messages (default) or disconnect")
    .option("--limit <name=value>", "set a broker limit, e.g. maxPeers=100 (repeatable; see docs/PROTOCOL.md)", collect)
    .option(
      "--store <path|memory>",
      "where retained values and history persist (SQLite); memory: nowhere. Default: ~/.local/state/xpcbus/store.db, or <socket>.store.db with --socket",
    )
    .option("--durability <level>", "normal (default): survives a crash of the broker; full: also a power loss (fsync per commit)")
    .option("--store-reset", "move a corrupt or newer-schema store aside (<path>.<reason>-<time>) and start an empty one")
    .option("--bridge <file>", "carry subjects to and from NATS as the file says (docs/OPERATIONS.md, \"Bridging to NATS\"); reloaded on SIGHUP")
    .action(lazy(daemonCommands, "daemonCommand"));

  brokerOptions(program.command("pub"))
    .description("publish a message")
    .argument("<subject>")
    .argument("[data]", "payload text (or JSON with --json); required unless --stdin: '' for an empty message")
    .option("--json", "the data is JSON")
    .option(
      "--stdin",
      "publish one message per line of standard input; a line that cannot be sent (bad JSON, too large) is reported " +
        "on stderr with its number and skipped, the others are still sent, and the exit code is 1",
    )
    .option("--retain", "keep as the subject's retained value")
    .action(lazy(clientCommands, "pubCommand"));

  brokerOptions(program.command("sub"))
    .description("print messages on a subject, one per line (a text with a line break or a control character as a JSON string)")
    .argument("<subject>", "subject; * matches one token, > the rest")
    .option("--json", "print JSON lines")
    .option("--count <n>", "exit after n messages", positiveInt)
    .option("--queue <group>", "join a queue group")
    .option("--replay", "print the retained values first")
    .option(
      "--since <point>",
      "first print the messages the broker still keeps after a sequence number (1200), from a duration ago (30s, 5m, 2h, 1d) " +
        "or from an ISO time (2024-05-01T12:00:00Z); messages it no longer keeps are reported on stderr as a gap",
    )
    .action(lazy(clientCommands, "subCommand"));

  brokerOptions(program.command("history"))
    .description('print the latest messages the broker keeps on a subject, oldest first: "<seq> <subject> <payload>" per line')
    .argument("<subject>", "subject; * matches one token, > the rest")
    .option("--limit <n>", "at most n messages, up to 1000 (default 100)", positiveInt)
    .option("--json", "print JSON lines with subject, seq, time (ISO), encoding and data")
    .action(lazy(clientCommands, "historyCommand"));

  brokerOptions(program.command("get"))
    .description("print a subject's retained value")
    .argument("<subject>")
    .option("--json", "print JSON")
    .action(lazy(clientCommands, "getCommand"));

  brokerOptions(program.command("req"))
    .description("send a request and print the reply")
    .argument("<subject>")
    .argument("[data]", "payload text (or JSON with --json)")
    .option("--json", "the data is JSON, and print the reply as JSON")
    .option("--timeout <ms>", "reply timeout in ms (default 5000)", positiveInt)
    .action(lazy(clientCommands, "reqCommand"));

  brokerOptions(program.command("reply"))
    .description("answer requests on a subject, with fixed data or with a command's output")
    .argument("<subject>", "subject; * matches one token, > the rest")
    .argument("[data]", "the reply: payload text (or JSON with --json); '' for an empty reply")
    .option(
      "--exec <command>",
      "run the command through /bin/sh for each request: the request's payload on its stdin, " +
        "$XPCBUS_SUBJECT its subject, its stdout (one trailing newline trimmed) the reply; its stderr goes to ours. " +
        "A command that exits non-zero, is killed, runs over the time limit or writes over the output limit " +
        "answers with an error (the requester's req exits 1 with it)",
    )
    .option("--json", "the data (or the --exec output) is JSON, and print JSON lines")
    .option("--queue <group>", 'answer as one of this queue group: each request reaches one member (default: "responders", shared by every replier of the subject)')
    .option("--count <n>", "exit after answering n requests", positiveInt)
    .addHelpText(
      "after",
      `\nPrints one line per request answered on stdout: "<subject> <request> -> <reply>", or "-> error: <why>" (JSON lines with --json).\n` +
        `--exec limits: ${EXEC_TIMEOUT_MS} ms per run, ${MAX_EXEC_OUTPUT_BYTES} bytes of output, ${MAX_CONCURRENT_EXECS} runs at once, ` +
        `${MAX_WAITING_EXECS} requests waiting (past it: an error reply "busy"). SIGINT/SIGTERM kills running commands (their requesters get an error) and exits 0.`,
    )
    .action(lazy(replyCommands, "replyCommand"));

  const statusOptions = (command: Command, watchOnly: boolean): Command => {
    brokerOptions(command)
      .option("--json", watchOnly ? "one JSON line per refresh instead of the table" : "print JSON (with --watch: one JSON line per refresh)");
    if (!watchOnly) command.option("--watch", "a live view: refreshed every --interval ms, with msgs/s per peer and per subject (as xpcbus top)");
    return command
      .option("--interval <ms>", `between refreshes (default ${DEFAULT_STATUS_INTERVAL_MS})`, timerMs)
      .option("--count <n>", "exit after n refreshes", positiveInt)
      .addHelpText(
        "after",
        "\nThe live view: peers (pid, exe cut to the terminal's width) with msgs/s in and out and dropped counts, and subscribed subjects " +
          "with the deliveries/s to their subscribers (≤: an upper bound, when a subscriber holds other subscriptions too; the broker counts per peer). " +
          "Rates are deltas of the broker's counters between two refreshes, so the first refresh has none. " +
          "On a terminal the screen is redrawn; into a pipe each refresh is a block appended after the last.",
      );
  };

  statusOptions(program.command("status").description("show the broker's peers, subjects and counters (--watch: live)"), false).action(
    lazy(statusWatch, "statusOrWatchCommand"),
  );
  statusOptions(program.command("top").description("a live view of the broker: xpcbus status --watch"), true).action(lazy(statusWatch, "statusWatchCommand"));

  brokerOptions(program.command("watch"))
    .description("print one line per wake-up of a subject (notify), without receiving its messages")
    .argument("<subject>", "a concrete subject (no wildcards)")
    .option("--fetch", "fetch the retained value at each wake-up")
    .option("--json", "print JSON lines")
    .option("--count <n>", "exit after n wake-ups", positiveInt)
    .action(lazy(notifyCommands, "watchCommand"));

  program
    .command("launchd")
    .description("macOS: print, install, uninstall or show the broker's launchd job")
    .argument("<action>", "print | install | uninstall | status")
    .option("--user", "a per-user agent in ~/Library/LaunchAgents (the default)")
    .option("--system", "a system daemon in /Library/LaunchDaemons (root)")
    .option("--label <label>", "launchd label (default io.xpcbus.broker, or io.xpcbus.broker.dev with --dev)")
    .option("--dev", "a development broker beside the installed one: its own label, service, socket and notify prefix")
    .option("--socket <path>", "the broker's socket (default: the scope's default; broker-dev.sock with --dev)")
    .option("--service <name>", "mach service name (default io.xpcbus.broker, or .dev)")
    .option("--log-level <level>", "XPCBUS_LOG_LEVEL for the job (default info)")
    .option("--dry-run", "print every file write and command instead of doing it")
    .action(lazy(serviceCommands, "launchdCommand"));

  program
    .command("systemd")
    .description("Linux: print, install or uninstall xpcbus.socket + xpcbus.service (socket activation)")
    .addHelpText(
      "after",
      "\ninstall checks first that systemd would take the units (for --user: a user manager, e.g. a login session or loginctl enable-linger) " +
        "and writes nothing otherwise. The system unit has PrivateTmp=yes, so it refuses to run xpcbus or node from /tmp or /var/tmp.",
    )
    .argument("<action>", "print | install | uninstall")
    .option("--user", "user units in ~/.config/systemd/user (default: system units in /etc/systemd/system)")
    .option("--system", "system units in /etc/systemd/system (the default; root)")
    .option("--log-level <level>", "XPCBUS_LOG_LEVEL for the service (default info)")
    .option("--dry-run", "print every file write and command instead of doing it")
    .action(lazy(serviceCommands, "systemdCommand"));

  const policy = program.command("policy").description("check a policy file, or show what a peer may do under it");
  policy.command("check").argument("<file>").description("validate a policy file").action(lazy(policyCommands, "policyCheckCommand"));
  policy
    .command("explain")
    .argument("<file>")
    .description("show which rule decides for a process (--pid) or an identity (--uid/--gid/--exe), and its rights")
    .addOption(new Option("--pid <pid>", "a running process (its uid, gid and exe: /proc on Linux, proc_pidinfo on macOS)").argParser(id).conflicts(["uid", "gid", "exe"]))
    .addOption(new Option("--uid <uid>", "a user id").argParser(id))
    .addOption(new Option("--gid <gid>", "a group id (with --uid)").argParser(id))
    .option("--exe <path>", "an executable path (with --uid)")
    .addOption(
      new Option("--exe-unverified", "the --exe was read by pid only, as the broker reports a peer it could get no pidfd for (exe rules then do not admit it)").conflicts(["pid"]),
    )
    .addHelpText("after", "\nExit codes: 0 admitted, 1 DENIED, 2 usage (a bad number, --pid with --uid, an unreadable or invalid file).")
    .action(lazy(policyCommands, "policyExplainCommand"));

  const bridge = program.command("bridge").description("check a bridge file (local subjects to and from a NATS cluster)");
  bridge
    .command("check")
    .argument("<file>")
    .description("validate a bridge file: prints what it bridges, or every problem with its place")
    .addHelpText("after", "\nExit codes: 0 valid, 2 usage (an unreadable or invalid file; every problem is listed on stderr).")
    .action(lazy(bridgeCommands, "bridgeCheckCommand"));

  const notify = program.command("notify").description("notification names, as notifyutil(1) does it, through the broker");
  brokerOptions(notify.command("post"))
    .description("post a name (setting its state first with --state)")
    .argument("<name>")
    .option("--state <n>", "64-bit state to set before posting")
    .action(lazy(notifyCommands, "notifyPostCommand"));
  brokerOptions(notify.command("wait"))
    .description("block until the name is posted, then print its state")
    .argument("<name>")
    .option("--timeout <ms>", "give up after ms (exit 1)", timerMs)
    .action(lazy(notifyCommands, "notifyWaitCommand"));
  brokerOptions(notify.command("check"))
    .description("register the name and print notify_check's answer and the state")
    .argument("<name>")
    .action(lazy(notifyCommands, "notifyCheckCommand"));
  brokerOptions(notify.command("state"))
    .description("print the name's 64-bit state")
    .argument("<name>")
    .action(lazy(notifyCommands, "notifyStateCommand"));

  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT_OK;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander has already printed its message (or the help/version text).
      return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    // Loaded only now: it brings the SDK's error classes, which --version and --help never need.
    const { describe, exitCodeOf, ReportedFailure } = await import("./cli-error.js");
    // The command has said what went wrong already (e.g. pub --stdin, line by line).
    if (error instanceof ReportedFailure) return error.exitCode;
    const verbose = program.opts<{ verbose?: boolean }>().verbose === true;
    process.stderr.write(`xpcbus: ${describe(error)}\n`);
    if (verbose && error instanceof Error && error.stack !== undefined) process.stderr.write(`${error.stack}\n`);
    return exitCodeOf(error);
  }
}

process.exitCode = await main(process.argv);
// Once the command is done, nothing should keep the process: if a stray
// handle does, do not hang the caller's script (or a service manager's stop).
setTimeout(() => process.exit(), 500).unref();
