// The daemon under a service manager: systemd socket activation for real,
// and SIGHUP reloading the configuration without dropping connections.
import { spawn, spawnSync } from "node:child_process";
import { statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../client-sdk/index.js";
import { CLI, cleanup, LineReader, tempDir } from "./test-support/harness.js";

afterEach(cleanup);
const hasActivate = spawnSync("sh", ["-c", "command -v systemd-socket-activate"]).status === 0;

describe("socket activation", () => {
  it.skipIf(!hasActivate)("serves clients on the socket systemd passes, and never creates or removes it", async () => {
    const socket = join(tempDir(), "activated.sock");
    const activator = spawn("systemd-socket-activate", ["-l", socket, "-E", "XPCBUS_LOG_LEVEL=debug", process.execPath, CLI, "daemon", "--socket", socket], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    try {
      const log = new LineReader(activator.stderr);
      await log.waitFor((l) => l.startsWith("Listening on"));
      const created = statSync(socket);
      // The first connection starts the daemon, which takes over the listening socket.
      const subscriber = await connect({ socket, reconnect: false });
      const sub = await subscriber.subscribe("activated.>");
      const publisher = await connect({ socket, reconnect: false });
      await publisher.publish("activated.hello", "world");
      const first = await sub[Symbol.asyncIterator]().next();
      expect(first.value?.data).toBe("world");
      const using = await log.waitForJson((l) => typeof l["msg"] === "string" && (l["msg"] as string).includes("socket activation"));
      expect(using["fd"]).toBe(3);
      await Promise.all([subscriber.close(), publisher.close()]);
      // The file is systemd's: same inode as before the daemon ran.
      expect(statSync(socket).ino).toBe(created.ino);
    } finally {
      activator.kill("SIGTERM");
    }
  });
});

describe("SIGHUP", () => {
  it("reloads the log level from --config, keeps connections, and refuses a bad file", async () => {
    const dir = tempDir();
    const socket = join(dir, "b.sock");
    const config = join(dir, "xpcbus.json");
    writeFileSync(config, JSON.stringify({ logLevel: "info" }));
    const daemon = spawn(process.execPath, [CLI, "daemon", "--socket", socket, "--config", config], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, XPCBUS_LOG_LEVEL: "" } });
    try {
      const log = new LineReader(daemon.stderr);
      await log.waitForJson((l) => l["msg"] === "ready");
      const kept = await connect({ socket, reconnect: false, name: "kept" });
      const first = await connect({ socket, reconnect: false });
      await first.close();
      expect(log.json().some((l) => l["msg"] === "peer connected")).toBe(false); // debug, not shown at info

      writeFileSync(config, JSON.stringify({ logLevel: "debug" }));
      daemon.kill("SIGHUP");
      await log.waitForJson((l) => l["msg"] === "SIGHUP: configuration reloaded" && l["logLevel"] === "debug");
      const second = await connect({ socket, reconnect: false });
      await log.waitForJson((l) => l["msg"] === "peer connected");
      await second.close();

      writeFileSync(config, "{ not json");
      daemon.kill("SIGHUP");
      await log.waitForJson((l) => l["msg"] === "SIGHUP: configuration refused; the previous one stays");
      writeFileSync(config, JSON.stringify({ logLevel: "info", colour: "blue" }));
      daemon.kill("SIGHUP");
      const refused = await log.waitForJson((l) => typeof l["reason"] === "string" && (l["reason"] as string).includes('unknown key "colour"'));
      expect(refused["level"]).toBe(50);
      // The connection made before any reload is still served.
      expect((await kept.status()).peers.some((p) => p.name === "kept")).toBe(true);
      await kept.close();
    } finally {
      daemon.kill("SIGKILL");
    }
  });
});
