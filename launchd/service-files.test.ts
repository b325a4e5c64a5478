// The generated launchd job and systemd units: they parse back, hold every
// key with absolute paths, keep dev and prod apart, and the installers print
// exactly what they would run.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { parse } from "plist";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "../daemon/test-support/harness.js";
import { launchdJob, launchdPlist, type LaunchdJob } from "./launchd-plist.js";
import { currentProgram } from "./program.js";
import { serviceNames } from "./service-names.js";
import { systemdUnits } from "./systemd-units.js";

const dir = mkdtempSync(join(tmpdir(), "xpcbus-units-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const which = (tool: string): boolean => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;

describe("launchd job", () => {
  const env = { HOME: "/Users/ada" };
  const user = serviceNames({ scope: "user", home: "/Users/ada", uid: 501, env });
  const dev = serviceNames({ scope: "user", dev: true, home: "/Users/ada", uid: 501, env });
  const system = serviceNames({ scope: "system" });

  it("holds every key, with absolute paths, and parses back with the plist library", () => {
    const job = launchdJob(user, currentProgram(), "debug");
    const parsed = parse(launchdPlist(job)) as unknown as LaunchdJob;
    expect(parsed).toEqual(job);
    expect(parsed.Label).toBe("io.xpcbus.broker");
    expect(parsed.MachServices).toEqual({ "io.xpcbus.broker": true });
    expect(parsed.KeepAlive).toEqual({ SuccessfulExit: false });
    expect(parsed.RunAtLoad).toBe(true);
    expect(parsed.ProcessType).toBe("Adaptive");
    expect(parsed.EnvironmentVariables).toEqual({ XPCBUS_LOG_LEVEL: "debug" });
    const [node, cli, ...args] = parsed.ProgramArguments;
    expect(isAbsolute(node!) && isAbsolute(cli!)).toBe(true);
    expect(existsSync(node!)).toBe(true);
    expect(cli).toMatch(/dist\/daemon\/cli\/main\.js$/);
    expect(args).toEqual(["daemon", "--socket", user.socket, "--service", "io.xpcbus.broker"]);
    expect(parsed.StandardErrorPath).toBe("/Users/ada/Library/Logs/xpcbus/io.xpcbus.broker.log");
    expect(user.plistPath).toBe("/Users/ada/Library/LaunchAgents/io.xpcbus.broker.plist");
  });

  // Skipped, with this reason, where plistutil is missing (.ci/run installs libplist-utils).
  it.skipIf(!which("plistutil"))("parses back with plistutil (libplist)", () => {
    const file = join(dir, "job.plist");
    writeFileSync(file, launchdPlist(launchdJob(dev, currentProgram(), "info")));
    const out = execFileSync("plistutil", ["-i", file, "-f", "xml"]).toString();
    expect(parse(out)).toEqual(launchdJob(dev, currentProgram(), "info"));
  });

  it("keeps a --dev broker apart from the installed one: label, service, socket and notify prefix", () => {
    expect(dev.label).toBe("io.xpcbus.broker.dev");
    expect(dev.service).toBe("io.xpcbus.broker.dev");
    for (const key of ["label", "service", "socket", "notifyPrefix", "plistPath"] as const) expect(dev[key]).not.toBe(user[key]);
    expect(user.notifyPrefix).toBe("user.uid.501.io.xpcbus.broker");
    expect(dev.notifyPrefix).toBe("user.uid.501.io.xpcbus.broker.dev");
  });

  it("puts a system daemon in the system places", () => {
    expect(system.plistPath).toBe("/Library/LaunchDaemons/io.xpcbus.broker.plist");
    expect(system.logDir).toBe("/var/log/xpcbus");
    expect(system.notifyPrefix).toBe("io.xpcbus.broker");
    expect(launchdJob(system, currentProgram(), "info").ProgramArguments).toContain("--system");
  });

  it("install --dry-run prints the exact launchctl commands; install for real refuses off macOS", async () => {
    const uid = process.getuid!();
    const home = process.env["HOME"];
    const result = await runCli(["launchd", "install", "--dev", "--dry-run"]);
    expect(result.code).toBe(0);
    expect(result.stdout.trim().split("\n")).toEqual([
      `mkdir -p ${home}/Library/LaunchAgents`,
      `mkdir -p ${home}/Library/Logs/xpcbus`,
      `write ${home}/Library/LaunchAgents/io.xpcbus.broker.dev.plist (mode 644)`,
      `launchctl bootout gui/${uid}/io.xpcbus.broker.dev`,
      `launchctl bootstrap gui/${uid} ${home}/Library/LaunchAgents/io.xpcbus.broker.dev.plist`,
      `launchctl enable gui/${uid}/io.xpcbus.broker.dev`,
    ]);
    const uninstall = await runCli(["launchd", "uninstall", "--system", "--dry-run"]);
    expect(uninstall.stdout.trim().split("\n")).toEqual(["launchctl bootout system/io.xpcbus.broker", "rm -f /Library/LaunchDaemons/io.xpcbus.broker.plist"]);
    if (process.platform !== "darwin") {
      const refused = await runCli(["launchd", "install"]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/systemd install --user/);
    }
    const printed = await runCli(["launchd", "print", "--label", "com.example.bus", "--service", "com.example.bus"]);
    expect((parse(printed.stdout) as unknown as LaunchdJob).Label).toBe("com.example.bus");
  });
});

describe("systemd units", () => {
  it("listen where the daemon expects, run it with absolute paths, restart on failure, and are hardened", () => {
    const program = currentProgram();
    const system = systemdUnits("system", program, "info", "/root");
    expect(system.socketUnit).toMatch(/^ListenStream=%t\/xpcbus\/broker\.sock$/m);
    expect(system.socketUnit).toMatch(/^SocketMode=0600$/m);
    expect(system.serviceUnit).toContain(`ExecStart=${program.node} ${program.cli} daemon --socket /run/xpcbus/broker.sock --system`);
    for (const line of ["Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/run/xpcbus", "Environment=XPCBUS_LOG_LEVEL=info"]) {
      expect(system.serviceUnit.split("\n")).toContain(line);
    }
    expect(system.directory).toBe("/etc/systemd/system");
    const user = systemdUnits("user", program, "debug", "/home/ada");
    expect(user.serviceUnit).toContain("--socket %t/xpcbus/broker.sock");
    expect(user.directory).toBe("/home/ada/.config/systemd/user");
  });

  // Skipped where systemd-analyze is missing (.ci/run installs systemd).
  it.skipIf(!which("systemd-analyze"))("pass systemd-analyze verify", () => {
    for (const scope of ["system", "user"] as const) {
      const units = systemdUnits(scope, currentProgram(), "info", "/root");
      const unitDir = join(dir, scope);
      const runtime = join(dir, `${scope}-runtime`);
      execFileSync("mkdir", ["-p", unitDir, runtime]);
      writeFileSync(join(unitDir, "xpcbus.socket"), units.socketUnit);
      writeFileSync(join(unitDir, "xpcbus.service"), units.serviceUnit);
      const args = [...(scope === "user" ? ["--user"] : []), "verify", join(unitDir, "xpcbus.socket"), join(unitDir, "xpcbus.service")];
      const result = spawnSync("systemd-analyze", args, { env: { ...process.env, XDG_RUNTIME_DIR: runtime } });
      expect(result.status, `${scope}: ${result.stderr.toString()}`).toBe(0);
    }
  });

  it("install --dry-run prints the files and systemctl commands", async () => {
    const result = await runCli(["systemd", "install", "--user", "--dry-run"]);
    const home = process.env["HOME"];
    expect(result.stdout.trim().split("\n")).toEqual([
      `mkdir -p ${home}/.config/systemd/user`,
      `write ${home}/.config/systemd/user/xpcbus.socket (mode 644)`,
      `write ${home}/.config/systemd/user/xpcbus.service (mode 644)`,
      "systemctl --user daemon-reload",
      "systemctl --user enable --now xpcbus.socket",
    ]);
    const uninstall = await runCli(["systemd", "uninstall", "--dry-run"]);
    expect(uninstall.stdout.trim().split("\n")[0]).toBe("systemctl disable --now xpcbus.socket xpcbus.service");
  });
});
