// The NATS bridge with real processes: a real nats-server and real daemons
// (the built CLI, `--bridge FILE`) standing in for machines of a fleet.
// What is shown: subjects mapped both ways with payload and encoding kept, no
// loops (noEcho + Xpcbus-Origin), a NATS crash mid-stream (local delivery
// untouched, counters that add up, bridged delivery resuming), a NATS that is
// not there at start, and SIGHUP reloads of the bridge file.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { connect as natsConnect, type NatsConnection } from "nats";
import { afterEach, describe, expect, it } from "vitest";
import pino from "pino";
import { connect, type Client, type Message } from "../../client-sdk/index.js";
import { Broker } from "../core/index.js";
import { ownerOnlyPolicy } from "../core/policy.js";
import { MemoryTransport } from "../transports/memory-transport.js";
import { parseBridgeConfig } from "./bridge-config.js";
import { NatsBridge } from "./nats-bridge.js";
import type { BrokerStatus } from "../../protocol/index.js";
import { cleanup, eventually, LineReader, runCli, startBroker, tempDir, type BrokerProcess } from "../test-support/harness.js";

const NATS_SERVER = "/usr/sbin/nats-server";
const haveNats = existsSync(NATS_SERVER);
if (!haveNats) console.warn(`bridge tests skipped: no ${NATS_SERVER} (install nats-server 2.9+)`);

/** Fast reconnects, so a restarted server is found within a fraction of a second. */
const RECONNECT = { initialDelayMs: 50, maxDelayMs: 300 };

type Bridge = NonNullable<BrokerStatus["bridge"]>;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
}

class NatsServer {
  readonly child: ChildProcess;
  readonly log: LineReader;
  readonly exited: Promise<void>;

  constructor(readonly port: number) {
    this.child = spawn(NATS_SERVER, ["-a", "127.0.0.1", "-p", String(port)], { stdio: ["ignore", "ignore", "pipe"] });
    this.log = new LineReader(this.child.stderr!);
    this.exited = new Promise((resolve) => this.child.once("exit", () => resolve()));
  }

  ready(): Promise<string> {
    return this.log.waitFor((line) => line.includes("Server is ready"), 10_000, "nats-server's ready line");
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

const natsServers: NatsServer[] = [];
const closers: Array<() => Promise<unknown>> = [];

async function startNats(port: number): Promise<NatsServer> {
  const server = new NatsServer(port);
  natsServers.push(server);
  await server.ready();
  return server;
}

function bridgeFile(dir: string, name: string, body: Record<string, unknown>): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify({ version: 1, reconnect: RECONNECT, ...body }));
  return path;
}

async function daemon(bridge: string): Promise<BrokerProcess> {
  return startBroker({ args: ["--store", "memory", "--bridge", bridge] });
}

async function client(broker: BrokerProcess): Promise<Client> {
  const c = await connect({ socket: broker.socket, reconnect: false, name: "bridge-test" });
  closers.push(() => c.close());
  return c;
}

async function natsClient(port: number): Promise<NatsConnection> {
  const nc = await natsConnect({ servers: `127.0.0.1:${port}` });
  closers.push(() => nc.close());
  return nc;
}

async function bridgeOf(c: Client): Promise<Bridge> {
  const bridge = (await c.status()).bridge;
  if (bridge === undefined) throw new Error("status has no bridge");
  return bridge;
}

function waitForState(c: Client, state: Bridge["state"], timeoutMs = 8_000): Promise<Bridge> {
  return eventually(async () => {
    const b = await bridgeOf(c);
    return b.state === state ? b : undefined;
  }, timeoutMs, `bridge state "${state}"`);
}

/** Collects a local subscription's messages. */
async function collect(c: Client, pattern: string): Promise<Message[]> {
  const got: Message[] = [];
  await c.subscribe(pattern, { callback: (m) => got.push(m) });
  return got;
}

/**
 * Publishes `subject` on `from` until `seen()` is true: the first message of a
 * path proves every subscription along it is in place (NATS subscriptions
 * propagate asynchronously). Returns how many were published.
 */
async function until(from: Client, subject: string, seen: () => boolean, timeoutMs = 8_000): Promise<number> {
  let published = 0;
  await eventually(async () => {
    if (seen()) return true;
    await from.publish(subject, "probe");
    published++;
    await new Promise((r) => setTimeout(r, 50));
    return seen() ? true : undefined;
  }, timeoutMs, `a probe on "${subject}" to come through`);
  return published;
}

const settle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
  for (const server of natsServers.splice(0)) await server.kill("SIGKILL");
  cleanup();
});

describe.skipIf(!haveNats)("NATS bridge (real nats-server, real daemons)", () => {
  it("maps subjects both ways with payload and encoding kept, and never loops", async () => {
    const port = await freePort();
    await startNats(port);
    const dir = tempDir();
    const servers = [`nats://127.0.0.1:${port}`];
    const imports = [{ subject: "fleet.*.app.>", stripTokens: 2, localPrefix: "remote." }];
    const [a, b] = await Promise.all([
      daemon(bridgeFile(dir, "a.json", { nats: { servers }, export: [{ subject: "app.>", prefix: "fleet.a." }], import: imports })),
      daemon(
        bridgeFile(dir, "b.json", {
          nats: { servers },
          export: [
            { subject: "remote.>", prefix: "fleet.b." },
            { subject: "app.>", prefix: "fleet.b." },
          ],
          import: imports,
        }),
      ),
    ]);
    const [ca, cb] = await Promise.all([client(a), client(b)]);
    await Promise.all([waitForState(ca, "connected"), waitForState(cb, "connected")]);
    const nc = await natsClient(port);
    const onNats: Array<{ subject: string; origin?: string; enc?: string }> = [];
    nc.subscribe(">", { callback: (_e, m) => onNats.push({ subject: m.subject, origin: m.headers?.get("Xpcbus-Origin"), enc: m.headers?.get("Xpcbus-Enc") }) });
    await nc.flush();
    const [remoteOnA, remoteOnB, appOnA, appOnB] = await Promise.all([collect(ca, "remote.>"), collect(cb, "remote.>"), collect(ca, "app.>"), collect(cb, "app.>")]);
    // Both paths in place (the probes are left out of the counts below).
    await until(ca, "app.probe", () => remoteOnB.some((m) => m.subject === "remote.app.probe"));
    await until(cb, "app.probe", () => remoteOnA.some((m) => m.subject === "remote.app.probe"));

    await ca.publish("app.x", { k: 1, list: ["a", 2] });
    await ca.publish("app.t", "text from A");
    await ca.publish("app.bin", new Uint8Array([0, 1, 2, 255]));
    await cb.publish("app.y", "from B");
    await eventually(async () => (remoteOnB.filter((m) => m.subject !== "remote.app.probe").length >= 3 && remoteOnA.some((m) => m.subject === "remote.app.y") ? true : undefined));
    // Anything that would loop would have come round by now.
    await settle(300);

    const real = (list: Message[]): Message[] => list.filter((m) => !m.subject.endsWith(".probe"));
    const onB = real(remoteOnB);
    expect(onB.map((m) => m.subject)).toEqual(["remote.app.x", "remote.app.t", "remote.app.bin"]);
    expect(onB[0]).toMatchObject({ encoding: "json", data: { k: 1, list: ["a", 2] } });
    expect(onB[1]).toMatchObject({ encoding: "text", data: "text from A" });
    expect(onB[2]?.encoding).toBe("bytes");
    expect(Buffer.from(onB[2]?.raw ?? [])).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(real(remoteOnA).map((m) => m.subject)).toEqual(["remote.app.y"]);
    expect(real(remoteOnA)[0]).toMatchObject({ encoding: "text", data: "from B" });
    // Each side has exactly its own local copy, nothing came back.
    expect(real(appOnA).map((m) => m.subject)).toEqual(["app.x", "app.t", "app.bin"]);
    expect(real(appOnB).map((m) => m.subject)).toEqual(["app.y"]);
    // NATS saw each message once, from its origin, with its encoding; nothing re-exported (fleet.b.remote.…).
    const natsReal = onNats.filter((m) => !m.subject.endsWith(".probe"));
    expect(natsReal.map((m) => m.subject).sort()).toEqual(["fleet.a.app.bin", "fleet.a.app.t", "fleet.a.app.x", "fleet.b.app.y"]);
    expect(natsReal.find((m) => m.subject === "fleet.a.app.x")?.enc).toBe("json");
    expect(new Set(natsReal.map((m) => m.origin)).size).toBe(2);
    expect(onNats.some((m) => m.subject.startsWith("fleet.b.remote."))).toBe(false);
  });

  it("a NATS crash mid-stream: local delivery is whole, counters add up, bridged delivery resumes", async () => {
    const port = await freePort();
    let nats = await startNats(port);
    const dir = tempDir();
    const servers = [`nats://127.0.0.1:${port}`];
    // Small enough that the outage overflows it: drops are counted, and said once.
    const bufferBytes = 1_000;
    const a = await daemon(bridgeFile(dir, "a.json", { nats: { servers }, export: [{ subject: "app.>", prefix: "fleet.a." }], import: [], bufferBytes }));
    const b = await daemon(bridgeFile(dir, "b.json", { nats: { servers }, export: [], import: [{ subject: "fleet.a.app.>", stripTokens: 2, localPrefix: "remote." }] }));
    const [ca, cb] = await Promise.all([client(a), client(b)]);
    await Promise.all([waitForState(ca, "connected"), waitForState(cb, "connected")]);
    const [local, remote] = await Promise.all([collect(ca, "app.>"), collect(cb, "remote.>")]);
    let published = await until(ca, "app.probe", () => remote.length > 0);

    const N = 150;
    for (let i = 0; i < N; i++) {
      if (i === 50) {
        await nats.kill("SIGKILL");
        await waitForState(ca, "reconnecting");
      }
      await ca.publish("app.stream", `message ${i}`);
      published++;
    }
    const during = await bridgeOf(ca);
    expect(during.state).toBe("reconnecting");
    expect(during.bufferedBytes).toBeGreaterThan(0);
    expect(during.bufferedBytes).toBeLessThanOrEqual(bufferBytes);
    expect(during.dropped).toBeGreaterThan(0);
    // Local subscribers never noticed.
    await eventually(async () => (local.length === published ? true : undefined), 5_000, "every local message");
    expect(local.filter((m) => m.subject === "app.stream").map((m) => m.data)).toEqual(Array.from({ length: N }, (_, i) => `message ${i}`));

    nats = await startNats(port);
    await Promise.all([waitForState(ca, "connected"), waitForState(cb, "connected")]);
    const before = remote.length;
    published += await until(ca, "app.after", () => remote.slice(before).some((m) => m.subject === "remote.app.after"));

    // Counters, as `xpcbus status --json` gives them: every publish was sent to NATS or dropped, none still held.
    const cli = await runCli(["status", "--json", "--socket", a.socket]);
    expect(cli.code).toBe(0);
    const bridge = (JSON.parse(cli.stdout) as BrokerStatus).bridge!;
    expect(bridge).toMatchObject({ state: "connected", bufferedBytes: 0, imported: 0 });
    expect(bridge.exported + bridge.dropped).toBe(published);
    expect(bridge.dropped).toBeGreaterThan(0);
    await eventually(async () => ((await bridgeOf(cb)).imported === remote.length ? true : undefined), 5_000, "B's imported count to match its deliveries");
    expect(a.stderr.json().filter((l) => String(l["msg"]).startsWith("bridge buffer full"))).toHaveLength(1);
  });

  it("NATS unreachable at start: the daemon serves locally, then connects when NATS comes", async () => {
    const port = await freePort();
    const dir = tempDir();
    const a = await daemon(bridgeFile(dir, "a.json", { nats: { servers: [`nats://127.0.0.1:${port}`] }, export: [{ subject: "app.>", prefix: "fleet.a." }], import: [] }));
    const ca = await client(a);
    const waiting = await eventually(async () => {
      const b = await bridgeOf(ca);
      return b.lastError !== undefined ? b : undefined;
    }, 5_000, "the first refused connection");
    expect(waiting.state).toBe("connecting");
    expect(waiting.lastError).toMatch(/ECONNREFUSED|CONNECTION_REFUSED/);
    const local = await collect(ca, "app.>");
    await ca.publish("app.early", "held");
    await eventually(async () => (local.length === 1 ? true : undefined));
    expect((await bridgeOf(ca)).bufferedBytes).toBe(Buffer.byteLength("held") + Buffer.byteLength("fleet.a.app.early"));

    await startNats(port);
    const connected = await waitForState(ca, "connected");
    expect(connected.server).toBe(`127.0.0.1:${port}`);
    // The held message went out on connecting.
    await eventually(async () => ((await bridgeOf(ca)).exported === 1 ? true : undefined));
    expect((await bridgeOf(ca)).bufferedBytes).toBe(0);
    const nc = await natsClient(port);
    const seen: string[] = [];
    nc.subscribe("fleet.a.>", { callback: (_e, m) => seen.push(m.subject) });
    await nc.flush();
    await until(ca, "app.late", () => seen.includes("fleet.a.app.late"));
    const human = await runCli(["status", "--socket", a.socket]);
    expect(human.stdout).toMatch(new RegExp(`^bridge: connected to 127\\.0\\.0\\.1:${port}  exported \\d+`, "m"));
  });

  it("request/reply across the bridge: a local request answered by a responder on another broker, failures as responder errors", async () => {
    const port = await freePort();
    await startNats(port);
    const dir = tempDir();
    const servers = [`nats://127.0.0.1:${port}`];
    const a = await daemon(bridgeFile(dir, "a.json", { nats: { servers }, export: [{ subject: "app.>", prefix: "fleet.a." }], import: [] }));
    const b = await daemon(bridgeFile(dir, "b.json", { nats: { servers }, export: [], import: [{ subject: "fleet.*.app.>", stripTokens: 2, localPrefix: "remote." }] }));
    const [ca, cb] = await Promise.all([client(a), client(b)]);
    await Promise.all([waitForState(ca, "connected"), waitForState(cb, "connected")]);
    await cb.respond("remote.app.echo", (request) => ({
      echoed: request.encoding === "bytes" ? `bytes:${Buffer.from(request.raw).toString()}` : request.data,
      subject: request.subject,
    }));
    const reply = await eventually(() => ca.request("app.echo", { n: 7 }, { timeoutMs: 2_000 }), 8_000, "a reply across the bridge");
    expect(reply).toMatchObject({ encoding: "json", data: { echoed: { n: 7 }, subject: "remote.app.echo" } });
    // No responder behind B's import: B's broker says no_responders, and the requester on A gets no_responders, as locally.
    await expect(ca.request("app.nobody", "x", { timeoutMs: 2_000 })).rejects.toMatchObject({ code: "no_responders", message: expect.stringMatching(/no_responders/) });
    // A NATS request on an imported subject, from a plain NATS client.
    const nc = await natsClient(port);
    const natsReply = await nc.request("fleet.z.app.echo", new TextEncoder().encode("hi"), { timeout: 2_000 });
    expect(natsReply.headers?.get("Xpcbus-Enc")).toBe("json");
    // Without Xpcbus-Enc a NATS payload is bytes.
    expect(JSON.parse(natsReply.string())).toEqual({ echoed: "bytes:hi", subject: "remote.app.echo" });
  });

  it("the policy bounds what the network can publish: imports land only where the bridge rule allows, the rest is counted as dropped", async () => {
    const port = await freePort();
    await startNats(port);
    const dir = tempDir();
    const me = process.getuid?.() ?? 0;
    const policy = join(dir, "policy.json");
    writeFileSync(
      policy,
      JSON.stringify({
        version: 1,
        rules: [
          { name: "me", match: { uid: [me, 0] }, connect: "allow", publish: [">"], subscribe: [">"], request: [">"], watch: [">"], monitor: true },
          { name: "fleet", match: { bridge: true }, connect: "allow", publish: ["remote.allowed.>"] },
        ],
      }),
    );
    const file = bridgeFile(dir, "b.json", { nats: { servers: [`nats://127.0.0.1:${port}`] }, import: [{ subject: "fleet.*.>", stripTokens: 1, localPrefix: "remote." }] });
    const b = await startBroker({ args: ["--store", "memory", "--bridge", file, "--policy", policy] });
    const c = await client(b);
    await waitForState(c, "connected");
    const got = await collect(c, "remote.>");
    const nc = await natsClient(port);
    // Probes until the bridge's NATS subscription is in place (it propagates asynchronously).
    await eventually(async () => {
      nc.publish("fleet.allowed.x", new TextEncoder().encode("probe"));
      await settle(50);
      return got.length > 0 ? true : undefined;
    }, 8_000, "a probe through the bridge");
    nc.publish("fleet.denied.x", new TextEncoder().encode("no"));
    nc.publish("fleet.allowed.y", new TextEncoder().encode("yes"));
    await nc.flush();
    await eventually(async () => (got.some((m) => m.subject === "remote.allowed.y") ? true : undefined), 5_000, "the allowed import");
    await settle(200);
    expect(got.map((m) => m.subject).filter((s) => s !== "remote.allowed.x")).toEqual(["remote.allowed.y"]);
    const bridge = await bridgeOf(c);
    expect(bridge.dropped).toBe(1);
    expect(bridge.lastError).toMatch(/remote\.denied\.x.*permission|does not allow publish/);
  });

  it("refuses to start on a bad bridge file, naming the problem", async () => {
    const dir = tempDir();
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ version: 1, nats: { servers: [] }, export: [], import: [] }));
    const result = await runCli(["daemon", "--socket", join(dir, "b.sock"), "--store", "memory", "--bridge", bad]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/servers/);
  });

  it("SIGHUP: a bad bridge file keeps the running bridge; a good one replaces it", async () => {
    const port = await freePort();
    await startNats(port);
    const dir = tempDir();
    const servers = [`nats://127.0.0.1:${port}`];
    const file = bridgeFile(dir, "a.json", { nats: { servers }, export: [{ subject: "app.>", prefix: "fleet.a." }], import: [] });
    const a = await daemon(file);
    const ca = await client(a);
    await waitForState(ca, "connected");
    const nc = await natsClient(port);
    const seen: string[] = [];
    nc.subscribe(">", { callback: (_e, m) => seen.push(m.subject) });
    await nc.flush();
    await until(ca, "app.one", () => seen.includes("fleet.a.app.one"));

    writeFileSync(file, JSON.stringify({ version: 1, nats: { servers }, export: [{ subject: "app.>", prefix: "no-trailing-dot" }], import: [], bogus: 1 }));
    a.child.kill("SIGHUP");
    const refused = await a.stderr.waitForJson((l) => l["msg"] === "SIGHUP: bridge file refused; the running bridge stays");
    expect(String(refused["reason"])).toMatch(/bogus/);
    await until(ca, "app.two", () => seen.includes("fleet.a.app.two"));
    expect((await bridgeOf(ca)).state).toBe("connected");

    bridgeFile(dir, "a.json", { nats: { servers }, export: [{ subject: "app.>", prefix: "fleet.c." }], import: [] });
    a.child.kill("SIGHUP");
    await a.stderr.waitForJson((l) => l["msg"] === "SIGHUP: bridge reloaded");
    await waitForState(ca, "connected");
    await until(ca, "app.three", () => seen.includes("fleet.c.app.three"));
    expect(seen).not.toContain("fleet.a.app.three");
  });
});

// In process, in milliseconds: what needs no NATS at all.
describe("NatsBridge lifecycle (in process, no NATS)", () => {
  const config = (port: number) =>
    parseBridgeConfig(
      JSON.stringify({ version: 1, nats: { servers: [`nats://127.0.0.1:${port}`] }, export: [{ subject: "app.>", prefix: "x." }], import: [], reconnect: RECONNECT }),
      "inline.json",
    );
  const log = pino({ level: "silent" });

  it("starts without waiting for NATS, holds exports, and after close() says closed and drops what it held", async () => {
    const broker = new Broker({ logger: log });
    const bridge = await NatsBridge.start({ config: config(await freePort()), broker, log });
    expect(bridge.status()).toMatchObject({ state: "connecting", source: "inline.json", exported: 0, dropped: 0 });
    const memory = new MemoryTransport();
    await memory.start(broker);
    const c = await connect({ transport: memory, reconnect: false });
    await c.publish("app.a", "held");
    await eventually(async () => (bridge.status().bufferedBytes > 0 ? true : undefined));
    await bridge.close();
    expect(bridge.status()).toMatchObject({ state: "closed", exported: 0, dropped: 1, bufferedBytes: 0 });
    await bridge.close(); // twice is harmless
    // The broker is untouched: local traffic goes on.
    await expect(c.publish("app.b", "still here")).resolves.toMatchObject({ seq: expect.any(Number) });
    await c.close();
    broker.close();
  });

  it("a policy that does not admit the bridge: start() still resolves, status says why", async () => {
    const broker = new Broker({ logger: log, policy: ownerOnlyPolicy(process.getuid?.() ?? 0) });
    const bridge = await NatsBridge.start({ config: config(await freePort()), broker, log });
    expect(bridge.status().state).toBe("closed");
    expect(bridge.status().lastError).toMatch(/cannot work locally/);
    await bridge.close();
    broker.close();
  });
});
