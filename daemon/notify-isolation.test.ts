// The notify tables keep each uid to what it may watch (docs/SECURITY.md,
// "The notify table"): the notifier's per-uid tables in process, then a root
// broker with a policy and clients of other uids (setpriv) that try to read
// what is not theirs.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, existsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { connect, type Client } from "../client-sdk/index.js";
import { loadNative } from "../native/index.js";
import { TableNotifier } from "./index.js";
import { startMemoryBroker } from "./test-support/memory-broker.js";
import { CLI, cleanup, eventually, LineReader, ROOT, SDK, tempDir } from "./test-support/harness.js";

const linux = process.platform === "linux";
const me = process.getuid?.() ?? -1;
const canSetpriv = linux && me === 0 && spawnSync("sh", ["-c", "command -v setpriv"]).status === 0;
const NATIVE = join(ROOT, "dist", "native", "index.js");

const children: ChildProcess[] = [];
const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
  for (const child of children.splice(0)) child.kill("SIGKILL");
  cleanup();
});

const id = (uid: number) => ({ pid: process.pid, uid, gid: uid, exe: process.execPath, exeVerified: true, method: "test" });

describe.skipIf(!linux)("per-uid notify tables (notifier in process)", () => {
  it("gives another uid a table of its own, holding only what that uid watched, and drops it when the uid leaves", () => {
    const path = join(tempDir(), "t.notify");
    const notifier = new TableNotifier({ path, prefix: "p", slots: 4, maxStates: 10 });
    const { NotifyTableReader } = loadNative();
    try {
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(notifier.infoFor(me)).toMatchObject({ table: path });
      expect(notifier.infoFor(4242)).toBeUndefined();
      expect(notifier.watch("p.a", 0n, 4242)).toMatchObject({ code: "notify_unavailable" });

      notifier.join(4242);
      notifier.join(4242); // a second peer of the same uid shares the table
      const theirs = `${path}.4242`;
      expect(notifier.infoFor(4242)).toMatchObject({ mechanism: "table", table: theirs, slots: 4 });
      // Owned by the broker (so its reader can neither chmod nor truncate it); 0640 is the ACL's mask.
      expect(statSync(theirs)).toMatchObject({ uid: me });
      expect(statSync(theirs).mode & 0o777).toBe(0o640);

      const own = new NotifyTableReader!(path);
      const other = new NotifyTableReader!(theirs);
      const used = (r: typeof own): number[] => Array.from({ length: r.slotCount }, (_, i) => i).filter((i) => r.nameHash(i) !== 0 || r.generation(i) !== 0);
      const secret = notifier.watch("p.secret", 0n) as { slot: number }; // the broker's uid
      const shared = notifier.watch("p.shared", 0n, 4242) as { slot: number; hash: number };
      notifier.watch("p.shared", 0n); // the same name in both tables
      for (let i = 1; i <= 50; i++) notifier.published("secret", i);
      expect(used(other)).toEqual([shared.slot]);
      expect(other.nameHash(shared.slot)).toBe(shared.hash);
      const before = other.generation(shared.slot);
      notifier.published("shared", 51);
      // One post, both tables that hold the name.
      expect(other.generation(shared.slot)).toBe(before + 1);
      expect(other.state(shared.slot)).toBe(51n);
      expect(notifier.state("p.shared")).toBe(51n);
      expect(own.state(secret.slot)).toBe(50n);

      notifier.post("app.flag", 7n);
      notifier.watch("app.flag", 0n, 4242);
      notifier.unwatch("app.flag", 4242);
      notifier.unwatch("p.shared", 4242);
      notifier.leave(4242);
      expect(existsSync(theirs)).toBe(true); // one peer of 4242 is still there
      notifier.leave(4242);
      expect(existsSync(theirs)).toBe(false);
      expect(notifier.infoFor(4242)).toBeUndefined();
      // The name no table holds any more keeps its state for its next watcher.
      expect(notifier.state("app.flag")).toBe(7n);
      own.close();
      other.close();
    } finally {
      notifier.close();
    }
    expect(existsSync(path)).toBe(false);
  });

  it("stops posting a revoked name into a uid's table once no peer of the uid watches it", () => {
    const path = join(tempDir(), "r.notify");
    const notifier = new TableNotifier({ path, prefix: "p", slots: 4, maxStates: 10 });
    const { NotifyTableReader } = loadNative();
    try {
      notifier.join(4242);
      const reader = new NotifyTableReader!(`${path}.4242`);
      const watched = notifier.watch("p.secret", 0n, 4242) as { slot: number };
      notifier.watch("p.secret", 0n, 4242); // a second peer of the uid
      notifier.unwatch("p.secret", 4242);
      notifier.revoke("p.secret", 4242); // still watched by the other peer: kept
      notifier.published("secret", 1);
      expect(reader.state(watched.slot)).toBe(1n);
      notifier.unwatch("p.secret", 4242);
      notifier.published("secret", 2);
      expect(reader.state(watched.slot)).toBe(2n); // unwatched but kept for a cheap re-watch
      notifier.revoke("p.secret", 4242);
      const generation = reader.generation(watched.slot);
      for (let seq = 3; seq < 20; seq++) notifier.published("secret", seq);
      expect(reader.generation(watched.slot)).toBe(generation);
      expect(reader.state(watched.slot)).toBe(2n);
      reader.close();
    } finally {
      notifier.close();
    }
  });

  it("removes the tables a broker that did not stop cleanly left behind", () => {
    const dir = tempDir();
    const path = join(dir, "b.notify");
    for (const stale of [path, `${path}.1000`, `${path}.65534`]) writeFileSync(stale, "old");
    writeFileSync(`${path}.keep`, "not a table");
    const notifier = new TableNotifier({ path, prefix: "p", slots: 2, maxStates: 2 });
    expect([existsSync(`${path}.1000`), existsSync(`${path}.65534`), existsSync(`${path}.keep`)]).toEqual([false, false, true]);
    notifier.close();
  });

  it("welcomes each uid with its own table and serves no notify op to a uid it has none for", async () => {
    const path = join(tempDir(), "m.notify");
    const notifier = new TableNotifier({ path, prefix: "p", slots: 8, maxStates: 8 });
    const memory = await startMemoryBroker({ notifier });
    try {
      const mine = await memory.client();
      const theirs = await memory.client({ identity: id(4242) });
      const w = await theirs.watch("x.y");
      expect(existsSync(`${path}.4242`)).toBe(true);
      const unknown = await memory.client({ identity: { ...id(0), uid: null } });
      await expect(unknown.watch("x.y")).rejects.toMatchObject({ code: "notify_unavailable" });
      const { seq } = await mine.publish("x.y", 1);
      for await (const e of w) {
        expect(e.seq).toBe(seq);
        break;
      }
      await theirs.close();
      await eventually(async () => (existsSync(`${path}.4242`) ? undefined : true), 5_000, "uid 4242's table to go");
    } finally {
      await memory.stop();
      notifier.close();
    }
  });
});

/** A world-reachable broker (socket 0666 in a 0755 directory): the policy is the gate. Root's, or that of `uid` (setpriv). */
async function policyBroker(policy: object, uid?: number): Promise<{ socket: string; log: LineReader }> {
  const dir = tempDir();
  chmodSync(dir, 0o755);
  if (uid !== undefined) chownSync(dir, uid, uid);
  const file = join(dir, "policy.json");
  writeFileSync(file, JSON.stringify(policy));
  const socket = join(dir, "b.sock");
  const daemon = [CLI, "daemon", "--socket", socket, "--socket-mode", "0666", "--policy", file, "--log-level", "info"];
  const [command, args] =
    uid === undefined ? [process.execPath, daemon] : ["/usr/bin/setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", process.execPath, ...daemon]];
  const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
  children.push(child);
  const log = new LineReader(child.stderr!);
  await log.waitForJson((l) => l["msg"] === "ready");
  return { socket, log };
}

/** A node script run as `uid` (setpriv); its stdout lines are JSON events, its stdin a line per command. */
function asUid(uid: number, script: string): { child: ChildProcess; out: LineReader; send: (line: string) => void } {
  const child = spawn("/usr/bin/setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", process.execPath, "--input-type=module", "-e", script], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  children.push(child);
  const out = new LineReader(child.stdout!);
  child.stderr!.resume();
  return { child, out, send: (line) => child.stdin!.write(`${line}\n`) };
}

const PRELUDE = `import { connect } from ${JSON.stringify(SDK)};
import { loadNative } from ${JSON.stringify(NATIVE)};
import { openSync, closeSync, chmodSync, truncateSync } from "node:fs";
import { createInterface } from "node:readline";
const emit = (event, fields = {}) => console.log(JSON.stringify({ event, ...fields }));
const attempt = (fn) => { try { fn(); return "ok"; } catch (e) { return e.code; } };
const tryOpen = (path, flags) => attempt(() => closeSync(openSync(path, flags)));
`;

describe.skipIf(!canSetpriv)("notify tables of a broker with a policy, read by other uids (setpriv)", () => {
  it("a uid that may watch only public.> can open no other uid's table, and its own shows nothing of secret.>", async () => {
    const NOBODY = 65534;
    const OTHER = 4242;
    const b = await policyBroker({
      version: 1,
      rules: [
        { name: "root", match: { uid: [0] }, connect: "allow", publish: [">"], subscribe: [">"], watch: [">"] },
        { name: "public-only", match: { uid: [NOBODY] }, connect: "allow", subscribe: ["public.>"], watch: ["public.>"] },
        { name: "other", match: { uid: [OTHER] }, connect: "allow", subscribe: [">"], watch: [">"] },
      ],
      otherwise: "deny",
    });
    const own = `${b.socket}.notify`;
    const nobodyTable = `${b.socket}.notify.${NOBODY}`;
    const otherTable = `${b.socket}.notify.${OTHER}`;

    // Another uid that watches secret.x: its table gets the posts A must not see.
    const other = asUid(
      OTHER,
      `${PRELUDE}
const c = await connect({ socket: ${JSON.stringify(b.socket)}, reconnect: false });
const w = await c.watch("secret.x");
emit("ready");
for await (const e of w) emit("wake", { seq: e.seq });`,
    );
    await other.out.waitForJson((e) => e["event"] === "ready");

    const publicOnly = asUid(
      NOBODY,
      `${PRELUDE}
const c = await connect({ socket: ${JSON.stringify(b.socket)}, reconnect: false });
const w = await c.watch("public.x");
const secret = await c.watch("secret.x").then(() => "watched", (e) => e.code);
const reader = new (loadNative().NotifyTableReader)(${JSON.stringify(nobodyTable)});
const snapshot = () => Array.from({ length: reader.slotCount }, (_, i) => i)
  .filter((i) => reader.nameHash(i) !== 0 || reader.generation(i) !== 0)
  .map((i) => ({ slot: i, hash: reader.nameHash(i), generation: reader.generation(i), state: String(reader.state(i)) }));
emit("ready", {
  secret,
  rootTable: tryOpen(${JSON.stringify(own)}, "r"),
  otherTable: tryOpen(${JSON.stringify(otherTable)}, "r"),
  ownRead: tryOpen(${JSON.stringify(nobodyTable)}, "r"),
  ownWrite: tryOpen(${JSON.stringify(nobodyTable)}, "r+"),
  ownChmod: attempt(() => chmodSync(${JSON.stringify(nobodyTable)}, 0o666)),
  ownTruncate: attempt(() => truncateSync(${JSON.stringify(nobodyTable)}, 0)),
  snapshot: snapshot(),
});
createInterface({ input: process.stdin }).on("line", () => emit("snapshot", { snapshot: snapshot() }));
for await (const e of w) emit("wake", { seq: e.seq });`,
    );
    const ready = await publicOnly.out.waitForJson((e) => e["event"] === "ready", 20_000);
    expect(ready).toMatchObject({
      secret: "permission_denied",
      rootTable: "EACCES",
      otherTable: "EACCES",
      ownRead: "ok",
      ownWrite: "EACCES",
      ownChmod: "EPERM",
      ownTruncate: "EACCES",
    });
    // Its table holds one slot: the name it watched.
    const initial = ready["snapshot"] as Array<{ slot: number; hash: number; generation: number }>;
    expect(initial).toHaveLength(1);

    // The files: each owned by the broker; the broker's own 0600, the other uids' 0640 with an ACL (mask r--).
    expect(statSync(own)).toMatchObject({ uid: 0 });
    expect(statSync(own).mode & 0o777).toBe(0o600);
    expect(statSync(nobodyTable).mode & 0o777).toBe(0o640);
    expect(statSync(otherTable).mode & 0o777).toBe(0o640);

    // Many posts of secret.x: the other uid sees them, uid 65534's table does not move.
    const publisher = await connect({ socket: b.socket, reconnect: false });
    clients.push(publisher);
    let last = 0;
    for (let i = 0; i < 200; i++) last = (await publisher.publish("secret.x", i)).seq!;
    await other.out.waitForJson((e) => e["event"] === "wake" && e["seq"] === last);
    publicOnly.send("snapshot");
    const after = await publicOnly.out.waitForJson((e) => e["event"] === "snapshot");
    expect(after["snapshot"]).toEqual(initial);

    // The control: a post of what it watches does show, and wakes it.
    const { seq } = await publisher.publish("public.x", "hello");
    await publicOnly.out.waitForJson((e) => e["event"] === "wake" && e["seq"] === seq);
    publicOnly.send("snapshot");
    const moved = await publicOnly.out.waitForJson((e) => e["event"] === "snapshot" && JSON.stringify(e["snapshot"]) !== JSON.stringify(initial));
    expect(moved["snapshot"]).toMatchObject([{ slot: initial[0]!.slot, hash: initial[0]!.hash, state: String(seq) }]);

    // Its last peer gone, the uid's table goes too.
    publicOnly.child.kill("SIGKILL");
    await eventually(async () => (existsSync(nobodyTable) ? undefined : true), 10_000, "uid 65534's table to be removed");
    expect(existsSync(otherTable)).toBe(true);
  });

  it("a broker not running as root gives a peer of another uid, admitted by policy, a table of its own", async () => {
    const BROKER = 4243;
    const PEER = 65534;
    const b = await policyBroker(
      {
        version: 1,
        rules: [
          { name: "owner", match: { uid: [BROKER] }, connect: "allow", publish: [">"], subscribe: [">"], watch: [">"] },
          { name: "guest", match: { uid: [PEER] }, connect: "allow", subscribe: ["public.>"], watch: ["public.>"] },
        ],
        otherwise: "deny",
      },
      BROKER,
    );
    const guest = asUid(
      PEER,
      // A broker of another uid than the guest's and root's is trusted only on purpose (docs/SECURITY.md, "Trusting the broker").
      `${PRELUDE}
const c = await connect({ socket: ${JSON.stringify(b.socket)}, brokerUid: ${BROKER}, reconnect: false });
const w = await c.watch("public.x");
emit("ready", { ownerTable: tryOpen(${JSON.stringify(`${b.socket}.notify`)}, "r"), ownRead: tryOpen(${JSON.stringify(`${b.socket}.notify.${PEER}`)}, "r") });
for await (const e of w) emit("wake", { seq: e.seq });`,
    );
    expect(await guest.out.waitForJson((e) => e["event"] === "ready", 20_000)).toMatchObject({ ownerTable: "EACCES", ownRead: "ok" });
    expect(statSync(`${b.socket}.notify`)).toMatchObject({ uid: BROKER });
    expect(statSync(`${b.socket}.notify.${PEER}`)).toMatchObject({ uid: BROKER });
    const owner = asUid(
      BROKER,
      `${PRELUDE}
const c = await connect({ socket: ${JSON.stringify(b.socket)}, reconnect: false });
const { seq } = await c.publish("public.x", 1);
emit("published", { seq });
await c.close();`,
    );
    const { seq } = await owner.out.waitForJson((e) => e["event"] === "published", 20_000);
    await guest.out.waitForJson((e) => e["event"] === "wake" && e["seq"] === seq);
  });
});
