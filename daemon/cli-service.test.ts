// Installing the broker as a service, where it cannot work: a macOS plan
// printed on Linux says so, `systemd install` checks for a service manager
// before writing anything, and a system unit that PrivateTmp would hide is
// refused. Plus where the daemon may create its socket's directory.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { privateTmpProblem } from "../launchd/index.js";
import { cleanup, runCli, startBroker, tempDir } from "./test-support/harness.js";

afterEach(cleanup);

const linux = process.platform === "linux";
const hasSystemctl = spawnSync("sh", ["-c", "command -v systemctl"]).status === 0;
/** A user manager answers: `systemd install --user` would really install, which a test must not do. */
const userManager = hasSystemctl && spawnSync("systemctl", ["--user", "show-environment"], { stdio: "ignore", timeout: 5000 }).status === 0;

describe("launchd plans off macOS", () => {
  it.skipIf(process.platform === "darwin")("say first, on stderr, that they are for macOS; stdout is the plan alone", async () => {
    for (const args of [["launchd", "print"], ["launchd", "install", "--dry-run"], ["launchd", "uninstall", "--dry-run"]]) {
      const result = await runCli(args);
      expect(result.code, args.join(" ")).toBe(0);
      expect(result.stderr).toMatch(/^xpcbus: launchd is macOS's service manager: this is the plan for macOS, not for this \w+ machine \(here: xpcbus systemd print\|install\)\n$/);
      expect(result.stdout).not.toMatch(/macOS/);
    }
  });
});

describe("systemd install", () => {
  // Where a user manager runs, install --user would install for real: the refusal cannot be shown there.
  it.skipIf(!linux || userManager)("--user with no user manager writes nothing and says what to do (exit 1, one line)", async () => {
    const home = tempDir();
    const result = await runCli(["systemd", "install", "--user"], { env: { HOME: home } });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
    if (hasSystemctl) {
      expect(result.stderr).toMatch(/^xpcbus: no systemd user manager answers for this user \(systemctl --user: .+\): keep one running with "loginctl enable-linger .+" .*sudo xpcbus systemd install --system; nothing was written\n$/);
    } else {
      expect(result.stderr).toBe("xpcbus: systemctl is not installed: this machine does not run systemd; nothing was written\n");
    }
    expect(readdirSync(home)).toEqual([]);
  });

  it("refuses a system unit that would run xpcbus or node from under /tmp, which its PrivateTmp hides", () => {
    expect(privateTmpProblem({ node: "/usr/bin/node", cli: "/tmp/checkout/dist/daemon/cli/main.js" })).toMatch(
      /^the system unit would run \/tmp\/checkout\/dist\/daemon\/cli\/main\.js, which is under \/tmp: its PrivateTmp=yes hides \/tmp from the service, so it could never start; .*--user$/,
    );
    expect(privateTmpProblem({ node: "/var/tmp/node/bin/node", cli: "/opt/xpcbus/dist/daemon/cli/main.js" })).toMatch(/under \/var\/tmp/);
    expect(privateTmpProblem({ node: "/usr/bin/node", cli: "/tmpfoo/main.js" })).toBeUndefined();
  });

  it("takes --user or --system, not both", async () => {
    const result = await runCli(["systemd", "print", "--user", "--system"]);
    expect(result).toMatchObject({ code: 2, stderr: "xpcbus: give --user or --system, not both\n" });
  });
});

describe("the socket's directory", () => {
  it("is created when its parent exists, and refused in one line when it does not, creating nothing", async () => {
    const base = tempDir();
    const missing = join(base, "no", "such", "dir", "b.sock");
    const refused = await runCli(["daemon", "--socket", missing]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      `xpcbus: cannot create the socket's directory ${join(base, "no", "such", "dir")}: its parent ${join(base, "no", "such")} does not exist ` +
        `(only the last level is created; make the others first, e.g. mkdir -p ${join(base, "no", "such")})\n`,
    );
    expect(existsSync(join(base, "no"))).toBe(false);
    const broker = await startBroker({ socket: join(base, "run", "b.sock") });
    expect(statSync(join(base, "run")).mode & 0o777).toBe(0o700);
    await broker.kill();
  });
});
