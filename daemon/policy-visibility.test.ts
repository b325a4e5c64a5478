// What a peer can learn about others (docs/SECURITY.md, "What a peer can
// learn"): `status` without the `monitor` right, `state` under the watch
// right, and the other answers that carry something of other peers. The
// logic in process (the broker over the memory transport, peers given other
// identities), then the real daemon with clients of other uids (setpriv).
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../client-sdk/index.js";
import type { BrokerStatus } from "../protocol/index.js";
import type { Notifier } from "./index.js";
import { OWN_CONNECTION_ONLY } from "./cli/status-view.js";
import { evaluate, ownerOnlyPolicy } from "./core/policy.js";
import { parsePolicy } from "./policy-file.js";
import { startMemoryBroker } from "./test-support/memory-broker.js";
import { RawPeer } from "./test-support/raw-peer.js";
import type { MemoryTransport } from "./transports/memory-transport.js";
import { CLI, cleanup, LineReader, runCli, SDK, tempDir } from "./test-support/harness.js";

afterEach(cleanup);
const me = process.getuid!();
const id = (uid: number) => ({ pid: 1000 + uid, uid, gid: uid, exe: "/usr/bin/node", exeVerified: true, method: "test" });

// Operator: everything. Monitor: reads public.> and sees the whole broker.
// Reader: reads public.> only. Watcher: reads and watches public.>.
const OPERATOR = 4000;
const MONITOR = 4001;
const READER = 4002;
const WATCHER = 4003;
const rules = (operator: number, monitor: number, reader: number, watcher: number) => ({
  version: 1,
  rules: [
    { name: "operator", match: { uid: [operator] }, connect: "allow", publish: [">"], subscribe: [">"], request: [">"], watch: [">"], monitor: true },
    { name: "monitor", match: { uid: [monitor] }, connect: "allow", subscribe: ["public.>"], monitor: true },
    { name: "reader", match: { uid: [reader] }, connect: "allow", subscribe: ["public.>"] },
    { name: "watcher", match: { uid: [watcher] }, connect: "allow", subscribe: ["public.>"], watch: ["public.>"] },
  ],
  otherwise: "deny",
});
const policy = parsePolicy(JSON.stringify(rules(OPERATOR, MONITOR, READER, WATCHER)), "policy.json");

const PREFIX = "test.bus";
/** A notifier that keeps states in a map: enough for `state`, whose right is what is tested here. */
function mapNotifier(): Notifier {
  const states = new Map<string, bigint>();
  return {
    info: { mechanism: "notify(3)", prefix: PREFIX },
    subjectOf: (name) => (name.startsWith(`${PREFIX}.`) ? name.slice(PREFIX.length + 1) : undefined),
    published: (subject, seq) => void states.set(`${PREFIX}.${subject}`, BigInt(seq)),
    watch: (name, initial) => ({ state: states.get(name) ?? initial }),
    unwatch: () => {},
    post: (name, state) => void (state === undefined || states.set(name, state)),
    state: (name) => states.get(name),
    close: () => {},
  };
}

/** The keys of a status answer for a peer without `monitor`, and their values but for its own entry (docs/PROTOCOL.md §6.3). */
function expectOwnOnly(status: BrokerStatus, peerId: number): void {
  expect(Object.keys(status).sort()).toEqual(["history", "peers", "pendingRequests", "pid", "published", "publishedCount", "retained", "scope", "server", "startedAt", "store", "subjectCount", "subjects"]);
  expect(status.history).toMatchObject({ subjects: 0, messages: 0, bytes: 0 });
  expect(status.store?.path).toBeUndefined();
  expect(status).toMatchObject({ scope: "peer", subjectCount: 0, subjects: [], publishedCount: 0, published: [], pendingRequests: 0 });
  expect(status.retained).toEqual({ count: 0, bytes: 0, maxCount: expect.any(Number), maxBytes: expect.any(Number) });
  expect(status.peers.map((p) => p.id)).toEqual([peerId]);
}

describe("status and the monitor right (memory transport)", () => {
  it("shows a peer without monitor its own connection only, in the same shape", async () => {
    const memory = await startMemoryBroker({ policy, describeProcess: () => ({ rss: 1, fds: 2 }) });
    try {
      const operator = await memory.client({ identity: id(OPERATOR), name: "operator" });
      await operator.subscribe("secret.x");
      await operator.publish("secret.x", "hidden", { retain: true });
      await operator.publish("public.a", "shown", { retain: true });
      const reader = await memory.client({ identity: id(READER), name: "reader" });
      await reader.subscribe("public.>");
      const status = await reader.status();
      expectOwnOnly(status, reader.peerId);
      expect(status.peers[0]).toMatchObject({ name: "reader", uid: READER, subscriptionCount: 1, subscriptions: [{ subject: "public.>" }] });
      expect(status.retained).toMatchObject({ maxCount: memory.broker.limits.maxRetainedEntries, maxBytes: memory.broker.limits.maxRetainedBytes });
      // Nothing of the operator: not its peer, its subject, its pid or its publishes.
      const text = JSON.stringify(status);
      for (const hidden of ["secret", "operator", "rss"]) expect(text).not.toContain(hidden);
    } finally {
      await memory.stop();
    }
  });

  it("shows a peer with monitor everything: every peer, the subject map, publish counters, retained and process figures", async () => {
    const memory = await startMemoryBroker({ policy, describeProcess: () => ({ rss: 1, fds: 2 }) });
    try {
      const operator = await memory.client({ identity: id(OPERATOR), name: "operator" });
      await operator.subscribe("secret.x");
      await operator.publish("secret.x", "hidden", { retain: true });
      // The monitor may subscribe to public.> only, and still sees the whole broker.
      const monitor = await memory.client({ identity: id(MONITOR), name: "monitor" });
      const status = await monitor.status();
      expect(status.scope).toBe("broker");
      expect(status.peers.map((p) => p.name).sort()).toEqual(["monitor", "operator"]);
      expect(status.subjects).toEqual([{ subject: "secret.x", subscribers: 1 }]);
      expect(status.published).toMatchObject([{ subject: "secret.x", messages: 1 }]);
      expect(status.retained.count).toBe(1);
      expect(status.process).toEqual({ rss: 1, fds: 2 });
      // The operator (monitor: true) sees the same; the embedding application's Broker.status() too.
      expect((await operator.status()).peers).toHaveLength(2);
      expect(memory.broker.status()).toMatchObject({ scope: "broker", subjectCount: 1 });
    } finally {
      await memory.stop();
    }
  });

  it("shows everything under no policy, the owner-only default and `otherwise: allow`", async () => {
    const allowAll = parsePolicy(JSON.stringify({ version: 1, rules: [], otherwise: "allow" }), "p.json");
    for (const p of [undefined, ownerOnlyPolicy(OPERATOR), allowAll]) {
      const memory = await startMemoryBroker(p === undefined ? {} : { policy: p });
      try {
        const a = await memory.client({ identity: id(OPERATOR) });
        await a.subscribe("x.y");
        const b = await memory.client({ identity: id(OPERATOR) });
        const status = await b.status();
        expect(status).toMatchObject({ scope: "broker", subjectCount: 1 });
        expect(status.peers).toHaveLength(2);
      } finally {
        await memory.stop();
      }
    }
  });

  it("follows a reload: a peer given monitor sees everything at once, one that loses it its own connection", async () => {
    const memory = await startMemoryBroker({ policy });
    try {
      await (await memory.client({ identity: id(OPERATOR) })).subscribe("secret.x");
      const reader = await memory.client({ identity: id(READER) });
      expect((await reader.status()).scope).toBe("peer");
      memory.broker.setPolicy(parsePolicy(JSON.stringify(rules(OPERATOR, READER, MONITOR, WATCHER)), "policy.json"));
      expect(await reader.status()).toMatchObject({ scope: "broker", subjectCount: 1 });
      memory.broker.setPolicy(policy);
      expectOwnOnly(await reader.status(), reader.peerId);
    } finally {
      await memory.stop();
    }
  });
});

describe("a reload that withdraws rights", () => {
  it("ends the subscriptions and watches the new rights no longer cover, tells the peer, and keeps the rest", async () => {
    const unwatched: string[] = [];
    const notifier = { ...mapNotifier(), unwatch: (name: string) => void unwatched.push(name) };
    const memory = await startMemoryBroker({ policy, notifier });
    try {
      const watcher = await memory.client({ identity: id(OPERATOR) });
      const errors: Array<{ code: string; message: string }> = [];
      watcher.on("brokerError", (error) => errors.push({ code: error.code, message: error.message }));
      const secret: unknown[] = [];
      const open: unknown[] = [];
      await watcher.subscribe("secret.x", { callback: (m) => secret.push(m.data) });
      await watcher.subscribe("public.x", { callback: (m) => open.push(m.data) });
      // Watches at the protocol level: this notifier has no client-side backend to wake.
      const raw = await RawPeer.greeted(memory.transport.as(id(OPERATOR)) as unknown as MemoryTransport);
      raw.send({ op: "watch", name: `${PREFIX}.secret.y`, id: 1 });
      raw.send({ op: "watch", name: `${PREFIX}.public.y`, id: 2 });
      await raw.next((m) => m["op"] === "ok" && m["id"] === 2);
      // The operator becomes a watcher: public.> only.
      memory.broker.setPolicy(parsePolicy(JSON.stringify(rules(4100, MONITOR, READER, OPERATOR)), "policy.json"));
      const publisher = await memory.client({ identity: id(4100) });
      await publisher.publish("secret.x", "hidden");
      await publisher.publish("public.x", "seen");
      await watcher.flush();
      expect(secret).toEqual([]);
      expect(open).toEqual(["seen"]);
      expect(unwatched).toEqual([`${PREFIX}.secret.y`]);
      expect(errors.map((e) => e.code)).toEqual(["permission_denied"]);
      expect(errors[0]!.message).toMatch(/no longer allows subscribe on "secret\.x": subscription \d+ ended/);
      const revoked = await raw.next((m) => m["op"] === "err");
      expect(revoked).toMatchObject({ code: "permission_denied", subject: `${PREFIX}.secret.y`, reason: expect.stringMatching(/no longer allows watch of/) });
      expect(revoked["id"]).toBeUndefined();
      // The watch that is still allowed is still there: unwatching it succeeds.
      raw.send({ op: "unwatch", name: `${PREFIX}.public.y`, id: 3 });
      await raw.next((m) => m["op"] === "ok" && m["id"] === 3);
      // Asking again is refused as any new op would be.
      await expect(watcher.subscribe("secret.x")).rejects.toMatchObject({ code: "permission_denied" });
    } finally {
      await memory.stop();
    }
  });
});

describe("the monitor right in the policy file", () => {
  it("is true or false, grants nothing when left out, and `policy explain` names it", async () => {
    expect(evaluate(policy, id(MONITOR)).monitor).toBe(true);
    expect(evaluate(policy, id(READER)).monitor).toBe(false);
    expect(evaluate(policy, id(9999))).toMatchObject({ allowed: false, monitor: false });
    expect(evaluate(ownerOnlyPolicy(OPERATOR), id(0)).monitor).toBe(true);
    expect(() => parsePolicy(JSON.stringify({ version: 1, rules: [{ name: "a", connect: "allow", monitor: "yes" }] }), "f.json")).toThrow(/rules\[0\]\.monitor: must be true or false/);
    const dir = tempDir();
    const file = join(dir, "p.json");
    writeFileSync(file, JSON.stringify(rules(OPERATOR, MONITOR, READER, WATCHER)));
    expect((await runCli(["policy", "check", file])).code).toBe(0);
    expect((await runCli(["policy", "explain", file, "--uid", String(MONITOR)])).stdout).toMatch(/^ {2}monitor: yes \(status shows the whole broker\)$/m);
    expect((await runCli(["policy", "explain", file, "--uid", String(READER)])).stdout).toMatch(/^ {2}monitor: no \(status shows its own connection only\)$/m);
  });
});

describe("state needs the watch right (memory transport)", () => {
  it("answers state of a name only to a peer that may watch it, else permission_denied", async () => {
    const memory = await startMemoryBroker({ policy, notifier: mapNotifier() });
    try {
      const operator = await memory.client({ identity: id(OPERATOR) });
      const seq = (await operator.publish("secret.x", 1)).seq!;
      const publicSeq = (await operator.publish("public.a", 1)).seq!;
      await operator.post("app.reload", 7n);
      expect(await operator.notifyState(`${PREFIX}.secret.x`)).toBe(BigInt(seq));
      const watcher = await memory.client({ identity: id(WATCHER) });
      expect(await watcher.notifyState(`${PREFIX}.public.a`)).toBe(BigInt(publicSeq));
      await expect(watcher.notifyState(`${PREFIX}.secret.x`)).rejects.toMatchObject({ code: "permission_denied", message: expect.stringMatching(/rule "watcher" does not allow watch on "secret\.x"/) });
      // A name outside the subject space needs watch on ">", as watch does.
      await expect(watcher.notifyState("app.reload")).rejects.toMatchObject({ code: "permission_denied", message: expect.stringMatching(/watch on ">"/) });
      // Subscribe alone does not give it: it is the watch right, as for watch.
      const reader = await memory.client({ identity: id(READER) });
      await expect(reader.notifyState(`${PREFIX}.public.a`)).rejects.toMatchObject({ code: "permission_denied" });
      await reader.flush();
    } finally {
      await memory.stop();
    }
  });
});

describe("what other answers carry of other peers (memory transport)", () => {
  it("welcome.peer numbers connections in order: a peer learns how many connected before it", async () => {
    const memory = await startMemoryBroker({ policy });
    try {
      const first = await memory.client({ identity: id(OPERATOR) });
      await memory.client({ identity: id(OPERATOR) });
      const third = await memory.client({ identity: id(READER) });
      expect(third.peerId - first.peerId).toBe(2);
    } finally {
      await memory.stop();
    }
  });

  it("a msg names no publisher: its keys are the subject, payload, encoding, seq and retained flag", async () => {
    const memory = await startMemoryBroker();
    try {
      const subscriber = await memory.greeted();
      subscriber.send({ op: "sub", sid: 1, subject: "a.>", id: 1 });
      await subscriber.next((m) => m["id"] === 1);
      const publisher = await memory.greeted();
      publisher.send({ op: "pub", subject: "a.b", p: Buffer.from("x"), enc: "text", retain: true, id: 2 });
      const msg = await subscriber.next((m) => m["op"] === "msg");
      expect(Object.keys(msg).sort()).toEqual(["enc", "op", "p", "retained", "seq", "subject"]);
    } finally {
      await memory.stop();
    }
  });

  it("sub with replay gives the retained values others set, under the peer's subscribe right only", async () => {
    const memory = await startMemoryBroker({ policy });
    try {
      const operator = await memory.client({ identity: id(OPERATOR) });
      await operator.publish("public.a", "A", { retain: true });
      await operator.publish("secret.x", "X", { retain: true });
      const reader = await memory.client({ identity: id(READER) });
      const got: string[] = [];
      await reader.subscribe("public.>", { replay: true, callback: (m) => got.push(`${m.subject}=${String(m.data)}`) });
      expect(got).toEqual(["public.a=A"]);
      await expect(reader.subscribe(">", { replay: true })).rejects.toMatchObject({ code: "permission_denied" });
      await expect(reader.get("secret.x")).rejects.toMatchObject({ code: "permission_denied" });
      expect(await reader.get("public.a")).toMatchObject({ found: true, data: "A" });
    } finally {
      await memory.stop();
    }
  });

  it("pub's ok: seq is one above the broker's previous publish, so it shows how many others published in between (not where)", async () => {
    const memory = await startMemoryBroker({ policy });
    try {
      const a = await memory.client({ identity: id(OPERATOR) });
      const b = await memory.client({ identity: id(OPERATOR) });
      const first = (await a.publish("a.one", 1)).seq!;
      const other = (await b.publish("b.elsewhere", 1)).seq!;
      const second = (await a.publish("a.two", 1)).seq!;
      expect(other).toBe(first + 1);
      expect(second).toBe(other + 1);
      // One counter for every subject: others' publishes show in any subject's next number.
      await b.publish("b.elsewhere", 2);
      await b.publish("b.elsewhere", 3);
      expect((await a.publish("a.one", 2)).seq).toBe(second + 3);
    } finally {
      await memory.stop();
    }
  });

  it("a responder learns the requester's peer number and the broker's request count from the reply inbox; a stranger's reply is not delivered", async () => {
    // No policy: the rights are not what this shows, and raw peers are this process.
    const memory = await startMemoryBroker();
    try {
      const responder = await memory.client();
      const inboxes: string[] = [];
      await responder.respond("svc.echo", (m) => {
        inboxes.push(m.reply ?? "");
        return "ok";
      });
      const requester = await memory.client();
      await requester.request("svc.echo", 1);
      await requester.request("svc.echo", 2);
      expect(inboxes).toEqual([`_INBOX.${requester.peerId}.1`, `_INBOX.${requester.peerId}.2`]);
      // Anyone may publish to a pending request's inbox: only the chosen responder's reply is delivered, and `delivered` says only that.
      const slow = await memory.greeted();
      slow.send({ op: "sub", sid: 1, subject: "svc.slow", queue: "q", id: 1 });
      await slow.next((m) => m["id"] === 1);
      const answered = requester.request("svc.slow", 1, { timeoutMs: 10_000 });
      const inbox = (await slow.next((m) => m["op"] === "msg"))["reply"];
      const stranger = await memory.greeted();
      stranger.send({ op: "pub", subject: inbox, p: Buffer.from("forged"), id: 2 });
      expect(await stranger.next((m) => m["id"] === 2)).toMatchObject({ op: "ok", seq: 0, delivered: false });
      slow.send({ op: "pub", subject: inbox, p: Buffer.from("real"), id: 3 });
      expect(await slow.next((m) => m["id"] === 3)).toMatchObject({ op: "ok", delivered: true });
      expect(Buffer.from((await answered).raw).toString()).toBe("real");
    } finally {
      await memory.stop();
    }
  });
});

/** A world-reachable daemon (socket 0666 in a 0755 directory) with the policy above for real uids; `operator` is this process (root). */
async function visibilityDaemon() {
  const dir = tempDir();
  chmodSync(dir, 0o755);
  const file = join(dir, "policy.json");
  writeFileSync(file, JSON.stringify(rules(me, 65533, 65534, 65532)));
  const socket = join(dir, "b.sock");
  const child = spawn(process.execPath, [CLI, "daemon", "--socket", socket, "--socket-mode", "0666", "--policy", file, "--log-level", "info"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const log = new LineReader(child.stderr);
  await log.waitForJson((l) => l["msg"] === "ready");
  return { socket, child, log, stop: () => child.kill("SIGKILL") };
}

const canSetpriv = me === 0 && spawnSync("sh", ["-c", "command -v setpriv"]).status === 0;

/** Runs `args` as `uid` (setpriv), node first; resolves with stdout and the exit code. */
function runAs(uid: number, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("/usr/bin/setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", process.execPath, ...args]);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("what another uid can learn, on a real daemon", () => {
  it.skipIf(!canSetpriv)("a uid with only subscribe public.> sees in status no other peer and no subject, and gets permission_denied for state of a hidden subject's name; a uid with monitor sees everything (setpriv)", async () => {
    const b = await visibilityDaemon();
    try {
      const operator = await connect({ socket: b.socket, reconnect: false, name: "operator" });
      await operator.subscribe("secret.x");
      await operator.publish("secret.x", "hidden", { retain: true });
      const prefix = operator.notifyPrefix ?? "io.xpcbus.broker";
      const script = `import { connect } from ${JSON.stringify(SDK)};
const c = await connect({ socket: ${JSON.stringify(b.socket)}, reconnect: false, name: "reader" });
await c.subscribe("public.>");
const status = await c.status();
let state;
try { state = String(await c.notifyState(${JSON.stringify(`${prefix}.secret.x`)})); } catch (e) { state = { code: e.code, message: e.message }; }
console.log(JSON.stringify({ peer: c.peerId, status, state }));
await c.close();`;
      const reader = await runAs(65534, ["--input-type=module", "-e", script]);
      expect(reader.stderr).toBe("");
      const out = JSON.parse(reader.stdout.trim()) as { peer: number; status: BrokerStatus; state: { code: string; message: string } };
      expectOwnOnly(out.status, out.peer);
      expect(out.status.peers[0]).toMatchObject({ uid: 65534, name: "reader", subscriptions: [{ subject: "public.>" }] });
      expect(JSON.stringify(out.status)).not.toMatch(/secret|operator/);
      expect(out.state).toMatchObject({ code: "permission_denied", message: expect.stringMatching(/does not allow watch on "secret\.x" for uid 65534/) });

      // The CLI copes: it says what it got, and shows nothing of the operator.
      const cli = await runAs(65534, [CLI, "status", "--socket", b.socket]);
      expect(cli.code).toBe(0);
      expect(cli.stdout).toContain(OWN_CONNECTION_ONLY);
      expect(cli.stdout).toMatch(/peers: 1\n {2}#\d+ xpcbus-status {2}pid \d+ uid 65534 /);
      expect(cli.stdout).not.toMatch(/secret|operator/);
      const top = await runAs(65534, [CLI, "status", "--watch", "--count", "2", "--interval", "50", "--socket", b.socket]);
      expect(top.code).toBe(0);
      expect(top.stdout.split(OWN_CONNECTION_ONLY)).toHaveLength(3);
      expect(top.stdout).not.toMatch(/secret|operator/);
      const topJson = await runAs(65534, [CLI, "status", "--watch", "--json", "--count", "1", "--socket", b.socket]);
      expect(JSON.parse(topJson.stdout.trim())).toMatchObject({ broker: { scope: "peer", peers: 1, subjects: 0 }, subjects: [] });

      // A uid with monitor (and no more than subscribe public.>) sees the operator, its subject and its publish.
      const monitored = await runAs(65533, [CLI, "status", "--json", "--socket", b.socket]);
      const full = JSON.parse(monitored.stdout.trim()) as BrokerStatus;
      expect(full.scope).toBe("broker");
      expect(full.peers.map((p) => p.name)).toContain("operator");
      expect(full.subjects).toContainEqual({ subject: "secret.x", subscribers: 1 });
      expect(full.published.map((p) => p.subject)).toContain("secret.x");
      expect(full.retained.count).toBe(1);
      expect(full.process).toBeDefined();
      await operator.close();
    } finally {
      b.stop();
    }
  });

  it.skipIf(!canSetpriv)("the store <socket>.store.db (retained values, history, the highest seq) and its WAL are readable by the broker's owner only (setpriv)", async () => {
    const b = await visibilityDaemon();
    try {
      const file = `${b.socket}.store.db`;
      for (const f of [file, `${file}-wal`]) expect(statSync(f).mode & 0o777, f).toBe(0o600);
      const peek = await runAs(65534, ["-e", `require("node:fs").readFileSync(${JSON.stringify(file)})`]);
      expect(peek.code).not.toBe(0);
      expect(peek.stderr).toMatch(/EACCES/);
    } finally {
      b.stop();
    }
  });
});
