#!/usr/bin/env node
// `xpcbus`: the daemon and the client commands. Errors are one line on
// stderr (a stack trace only with --verbose) and a documented exit code.

import { Command, CommanderError, Option } from "commander";
import { PACKAGE_VERSION } from "../core/version.js";
import { getCommand, pubCommand, reqCommand, statusCommand, subCommand } from "./client-commands.js";
import { describe, exitCodeOf, ReportedFailure } from "./cli-error.js";
import { daemonCommand } from "./daemon-command.js";
import { launchdCommand, systemdCommand } from "./service-commands.js";
import { policyCheckCommand, policyExplainCommand } from "./policy-commands.js";
import { notifyCheckCommand, notifyPostCommand, notifyStateCommand, notifyWaitCommand, watchCommand } from "./notify-commands.js";
import { EXIT_OK, EXIT_USAGE } from "./exit-codes.js";
import { integerOption, MAX_TIMER_MS } from "./integer-option.js";

const positiveInt = integerOption({ min: 1 });
/** A timeout the CLI waits out itself with setTimeout, which cannot wait longer. */
const timerMs = integerOption({ min: 1, max: MAX_TIMER_MS });
/** A pid, uid or gid. */
const id = integerOption({ min: 0 });

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

const SERVICE_HELP = "macOS: reach the broker over XPC at this mach service (e.g. io.xpcbus.broker)";
const SOCKET_HELP = "broker socket path (default: $XPCBUS_SOCKET, else $XDG_RUNTIME_DIR/xpcbus/broker.sock or /tmp/xpcbus-<uid>/broker.sock)";

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
    .action(daemonCommand);

  program
    .command("pub")
    .description("publish a message")
    .argument("<subject>")
    .argument("[data]", "payload text (or JSON with --json)")
    .option("--socket <path>", SOCKET_HELP)
    .option("--service <name>", SERVICE_HELP)
    .option("--json", "the data is JSON")
    .option(
      "--stdin",
      "publish one message per line of standard input; a line that cannot be sent (bad JSON, too large) is reported " +
        "on stderr with its number and skipped, the others are still sent, and the exit code is 1",
    )
    .option("--retain", "keep as the subject's retained value")
    .action(pubCommand);

  program
    .command("sub")
    .description("print messages on a subject, one per line")
    .argument("<subject>", "subject; * matches one token, > the rest")
    .option("--socket <path>", SOCKET_HELP)
    .option("--service <name>", SERVICE_HELP)
    .option("--json", "print JSON lines")
    .option("--count <n>", "exit after n messages", positiveInt)
    .option("--queue <group>", "join a queue group")
    .option("--replay", "print the retained values first")
    .action(subCommand);

  program
    .command("get")
    .description("print a subject's retained value")
    .argument("<subject>")
    .option("--socket <path>", SOCKET_HELP)
    .option("--service <name>", SERVICE_HELP)
    .option("--json", "print JSON")
    .action(getCommand);

  program
    .command("req")
    .description("send a request and print the reply")
    .argument("<subject>")
    .argument("[data]", "payload text (or JSON with --json)")
    .option("--socket <path>", SOCKET_HELP)
    .option("--service <name>", SERVICE_HELP)
    .option("--json", "the data is JSON, and print the reply as JSON")
    .option("--timeout <ms>", "reply timeout in ms (default 5000)", positiveInt)
    .action(reqCommand);

  program
    .command("status")
    .description("show the broker's peers, subjects and counters")
    .option("--socket <path>", SOCKET_HELP)
    .option("--service <name>", SERVICE_HELP)
    .option("--json", "print JSON")
    .action(statusCommand);

  program
    .command("watch")
    .description("print one line per wake-up of a subject (notify), without receiving its messages")
    .argument("<subject>", "a concrete subject (no wildcards)")
    .option("--socket <path>", SOCKET_HELP)
    .option("--service <name>", SERVICE_HELP)
    .option("--fetch", "fetch the retained value at each wake-up")
    .option("--json", "print JSON lines")
    .option("--count <n>", "exit after n wake-ups", positiveInt)
    .action(watchCommand);

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
    .action(launchdCommand);

  program
    .command("systemd")
    .description("Linux: print, install or uninstall xpcbus.socket + xpcbus.service (socket activation)")
    .argument("<action>", "print | install | uninstall")
    .option("--user", "user units in ~/.config/systemd/user (default: system units in /etc/systemd/system)")
    .option("--log-level <level>", "XPCBUS_LOG_LEVEL for the service (default info)")
    .option("--dry-run", "print every file write and command instead of doing it")
    .action(systemdCommand);

  const policy = program.command("policy").description("check a policy file, or show what a peer may do under it");
  policy.command("check").argument("<file>").description("validate a policy file").action(policyCheckCommand);
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
    .action(policyExplainCommand);

  const notify = program.command("notify").description("notification names, as notifyutil(1) does it, through the broker");
  notify
    .command("post")
    .description("post a name (setting its state first with --state)")
    .argument("<name>")
    .option("--state <n>", "64-bit state to set before posting")
    .option("--socket <path>", SOCKET_HELP)
    .option("--service <name>", SERVICE_HELP)
    .action(notifyPostCommand);
  notify
    .command("wait")
    .description("block until the name is posted, then print its state")
    .argument("<name>")
    .option("--timeout <ms>", "give up after ms (exit 1)", timerMs)
    .option("--socket <path>", SOCKET_HELP)
    .option("--service <name>", SERVICE_HELP)
    .action(notifyWaitCommand);
  notify
    .command("check")
    .description("register the name and print notify_check's answer and the state")
    .argument("<name>")
    .option("--socket <path>", SOCKET_HELP)
    .option("--service <name>", SERVICE_HELP)
    .action(notifyCheckCommand);
  notify
    .command("state")
    .description("print the name's 64-bit state")
    .argument("<name>")
    .option("--socket <path>", SOCKET_HELP)
    .option("--service <name>", SERVICE_HELP)
    .action(notifyStateCommand);

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
