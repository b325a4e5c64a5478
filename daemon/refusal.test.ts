// Refusals that retrying cannot change end reconnection: a policy reload that
// no longer admits a connected client, and a broker restarted with a stricter
// policy, close the SDK client with the broker's code and reason, and make
// `xpcbus sub` / `xpcbus watch` say why and exit 1. Refusals about load
// (too_many_peers) keep backing off. Real daemons, SIGHUP as an operator does it.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { connect, ConnectionRefusedError } from "../client-sdk/index.js";
import type { Client } from "../client-sdk/index.js";
import { cleanup, eventually, spawnCli, spawnClient, startBroker, tempDir, type BrokerProcess } from "./test-support/harness.js";

const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  cleanup();
});

const me = process.getuid!();
const ADMIT_ME = { version: 1, rules: [{ name: "me", match: { uid: [me] }, connect: "allow", publish: [">"], subscribe: [">"], request: [">"], watch: [">"], monitor: true }] };
const DENY_ALL = { version: 1, rules: [], otherwise: "deny" };
const FAST_RECONNECT = { initialDelayMs: 10, maxDelayMs: 40 };

/** A daemon with `--policy <file>`; `reload(policy)` rewrites the file and sends SIGHUP, resolving once the daemon reloaded it. */
async function policyBroker(policy: object, socket?: string): Promise<BrokerProcess & { file: string; reload(policy: object): Promise<void> }> {
  const file = join(tempDir(), "policy.json");
  writeFileSync(file, JSON.stringify(policy));
  const broker = await startBroker({ socket, args: ["--policy", file] });
  let reloads = 0;
  return Object.assign(broker, {
    file,
    async reload(next: object): Promise<void> {
      writeFileSync(file, JSON.stringify(next));
      const seen = ++reloads;
      broker.child.kill("SIGHUP");
      await broker.stderr.waitFor(() => broker.stderr.lines.filter((l) => l.includes("SIGHUP: policy reloaded")).length >= seen, 10_000, "the policy reload");
    },
  });
}

async function client(socket: string, options: Parameters<typeof connect>[0] = {}): Promise<Client> {
  const c = await connect({ socket, ...options });
  clients.push(c);
  return c;
}

/** Counts `reconnecting` events from now on; `atLeast(n)` resolves once n have come. */
function reconnectCounter(c: Client): { count: () => number; atLeast(n: number): Promise<"kept reconnecting"> } {
  let count = 0;
  const waiters: Array<{ n: number; resolve: (v: "kept reconnecting") => void }> = [];
  c.on("reconnecting", () => {
    count++;
    for (const w of waiters.filter((w) => count >= w.n)) w.resolve("kept reconnecting");
  });
  return {
    count: () => count,
    atLeast: (n) => new Promise((resolve) => waiters.push({ n, resolve })),
  };
}

describe("a refusal that retrying cannot change", () => {
  it("closes the SDK client with the broker's code and reason when a SIGHUP reload no longer admits it; pending calls fail with it", async () => {
    const broker = await policyBroker(ADMIT_ME);
    const c = await client(broker.socket, { reconnect: FAST_RECONNECT });
    const reconnects = reconnectCounter(c);
    // A request this client answers itself and never replies to: still pending when the refusal comes.
    let delivered!: () => void;
    const got = new Promise<void>((resolve) => (delivered = resolve));
    await c.respond("svc.hang", () => {
      delivered();
      return new Promise(() => {});
    });
    const pending = c.request("svc.hang", 1, { timeoutMs: 60_000 }).catch((e: unknown) => e);
    await got;

    await broker.reload(DENY_ALL);
    const outcome = await Promise.race([c.closed(), reconnects.atLeast(1)]);
    expect(outcome).toMatchObject({ code: "connection_denied", reason: expect.stringMatching(/no rule of .*policy\.json matches uid/) });
    expect(outcome).toBeInstanceOf(ConnectionRefusedError);
    expect(await pending).toBe(outcome);
    expect(reconnects.count()).toBe(0);
    expect(c.isClosed).toBe(true);
    await expect(c.publish("x", 1)).rejects.toBe(outcome);
  });

  it("stops reconnecting when the broker it reconnects to refuses it at hello (restarted with a stricter policy)", async () => {
    const socket = join(tempDir(), "b.sock");
    const first = await policyBroker(ADMIT_ME, socket);
    const c = await client(socket, { reconnect: FAST_RECONNECT });
    const lost = new Promise((resolve) => c.once("disconnected", resolve));
    await first.kill("SIGKILL");
    await lost;
    await policyBroker(DENY_ALL, socket);
    // Attempts already under way when the new broker came up may still fail on the socket; then the first refusal ends it.
    const reconnects = reconnectCounter(c);
    const outcome = await Promise.race([c.closed(), reconnects.atLeast(3)]);
    expect(outcome).toMatchObject({ code: "connection_denied", message: expect.stringMatching(/^the broker refused this client: no rule of/) });
    expect(outcome).toBeInstanceOf(ConnectionRefusedError);
  });

  it("makes the first connect() reject with it", async () => {
    const broker = await policyBroker(DENY_ALL);
    const error = await connect({ socket: broker.socket }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "ConnectionRefusedError", code: "connection_denied", reason: expect.stringMatching(/no rule of/) });
    expect(error).toBeInstanceOf(ConnectionRefusedError);
  });

  it("xpcbus sub and xpcbus watch print the reason in one line and exit 1 instead of reconnecting", async () => {
    const broker = await policyBroker(ADMIT_ME);
    const sub = spawnCli(["sub", "news.>", "--socket", broker.socket]);
    const watch = spawnCli(["watch", "news.today", "--socket", broker.socket]);
    await watch.stderr.waitFor((l) => l.includes("watching"), 10_000, "the watch to start");
    const observer = await client(broker.socket, { reconnect: false, name: "observer" });
    await eventually(async () => {
      const peer = (await observer.status()).peers.find((p) => p.name === "xpcbus-sub");
      return peer !== undefined && peer.subscriptionCount === 1 ? peer : undefined;
    }, 10_000, "xpcbus sub to subscribe");

    await broker.reload(DENY_ALL);
    for (const cli of [sub, watch]) {
      const outcome = await Promise.race([
        cli.exited,
        cli.stderr.waitFor((l) => l.includes("reconnecting"), 10_000, "a reconnect").then((line) => ({ reconnecting: line })),
      ]);
      expect(outcome).toEqual({ code: 1, signal: null });
      await cli.stderr.ended();
      expect(cli.stderr.lines).toHaveLength(cli === watch ? 2 : 1); // watch first said `watching "…"`
      expect(cli.stderr.lines.at(-1)).toMatch(/^xpcbus: the broker refused this client: no rule of .*policy\.json matches uid \d+.* \[connection_denied\]$/);
    }
  });
});

describe("a refusal about load", () => {
  it("too_many_peers at hello keeps backing off, and the client gets in once a place is free", async () => {
    const socket = join(tempDir(), "b.sock");
    const first = await startBroker({ socket });
    const waiting = spawnClient(
      socket,
      `const c = await connect({ socket, reconnect: ${JSON.stringify(FAST_RECONNECT)} });
c.on("reconnecting", ({ attempt }) => emit("reconnecting", { attempt }));
c.on("reconnected", () => emit("reconnected"));
c.on("closed", (e) => emit("closed", { code: e?.code }));
emit("ready");`,
    );
    await waiting.event("ready");
    // Stopped, it cannot take the one place before the occupier does.
    waiting.child.kill("SIGSTOP");
    await first.kill("SIGKILL");
    await startBroker({ socket, args: ["--limit", "maxPeers=1"] });
    const occupier = await client(socket, { reconnect: false, name: "occupier" });
    waiting.child.kill("SIGCONT");
    // Refused with too_many_peers at each attempt, and still trying.
    await waiting.event("reconnecting", (e) => (e["attempt"] as number) >= 3);
    expect(waiting.events("closed")).toEqual([]);
    expect(waiting.events("reconnected")).toEqual([]);
    await occupier.close();
    await waiting.event("reconnected");
  });
});
