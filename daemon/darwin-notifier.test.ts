// The macOS notifier's logic, on any platform: a fake notify center that
// keeps names the way notifyd does (a name, and its state, lives while any
// registration for it does; other uids' `user.uid.` names are refused) stands
// in for the addon. Covers the broker-uid rule, the bound on registrations,
// posting without one, and restoring a state notifyd forgot.
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../client-sdk/index.js";
import { ownsUserUidName } from "../protocol/index.js";
import type { PeerIdentity } from "./core/peer-link.js";
import { DarwinNotifier, MAX_NOTIFY_STATE_TOKENS, type NotifyCenter } from "./notify/darwin-notifier.js";
import { startMemoryBroker, type MemoryBroker } from "./test-support/memory-broker.js";

/** notifyd as the broker sees it, plus registrations by "other processes". */
class FakeNotifyd implements NotifyCenter {
  readonly names = new Map<string, { state: bigint; refs: number }>();
  /** Names this center (the broker) holds a registration for. */
  readonly held = new Set<string>();
  readonly calls: string[] = [];
  registrations = 0;

  constructor(readonly uid: number) {}

  #register(name: string): void {
    if (this.held.has(name)) return;
    if (this.uid !== 0 && !ownsUserUidName(name, this.uid)) {
      throw Object.assign(new Error(`notify_register_dispatch(${name}): not authorized (notify status 7)`), { status: 7 });
    }
    this.registrations++;
    this.held.add(name);
    this.other(name);
  }

  /** Another process registers for `name`. */
  other(name: string): void {
    const entry = this.names.get(name) ?? { state: 0n, refs: 0 };
    entry.refs++;
    this.names.set(name, entry);
  }

  /** A registration ends; notifyd frees the name with its last one. */
  release(name: string): void {
    const entry = this.names.get(name);
    if (entry === undefined) return;
    if (--entry.refs === 0) this.names.delete(name);
  }

  post(name: string, state?: bigint): void {
    this.calls.push(state === undefined ? `post ${name}` : `post ${name} ${state}`);
    if (state !== undefined) this.setState(name, state);
  }
  setState(name: string, state: bigint): void {
    this.#register(name);
    this.names.get(name)!.state = state;
  }
  state(name: string): bigint {
    this.#register(name);
    return this.names.get(name)!.state;
  }
  forget(name: string): void {
    if (this.held.delete(name)) this.release(name);
  }
  close(): void {
    for (const name of [...this.held]) this.forget(name);
  }
}

const PREFIX = "user.uid.501.io.xpcbus.broker";

describe("DarwinNotifier (fake notify center)", () => {
  let memory: MemoryBroker | undefined;
  afterEach(async () => {
    await memory?.stop();
    memory = undefined;
  });

  describe("another user's user.uid. names", () => {
    it("a non-root broker refuses them for state, watch and post with reserved_name, and the broker keeps serving", async () => {
      const center = new FakeNotifyd(501);
      memory = await startMemoryBroker({ notifier: new DarwinNotifier(PREFIX, 64, { uid: 501, center }) });
      // This test process runs as root (or whoever): a root client may post user.uid.0 names itself.
      const client = await memory.client({ identity: identity(0) });
      await expect(client.notifyState("user.uid.0.x")).rejects.toMatchObject({ code: "reserved_name" });
      await expect(client.notifyState("user.uid.0")).rejects.toMatchObject({ code: "reserved_name" });
      await expect(client.post("user.uid.0.x", 1n)).rejects.toMatchObject({ code: "reserved_name" });
      await expect(client.notifyState("user.uid.0501.x")).rejects.toMatchObject({ code: "reserved_name" });
      const raw = await memory.greeted();
      raw.send({ op: "watch", name: "user.uid.0.x", id: 1 });
      const err = await raw.errFor(1);
      expect(err).toMatchObject({ code: "reserved_name" });
      expect(err["reason"]).toContain("this broker runs as uid 501");
      // notifyd was never asked.
      expect(center.registrations).toBe(0);
      // Its own names and unscoped ones are served.
      const own = await memory.client({ identity: identity(501) });
      await own.post("user.uid.501.app.x", 4n);
      expect(await own.notifyState("user.uid.501.app.x")).toBe(4n);
      expect(await own.notifyState("app.unscoped")).toBe(0n);
    });

    it("a root broker serves every uid's names", async () => {
      const center = new FakeNotifyd(0);
      memory = await startMemoryBroker({ notifier: new DarwinNotifier("io.xpcbus.broker", 64, { uid: 0, center }) });
      const client = await memory.client({ identity: identity(501) });
      await client.post("user.uid.501.x", 2n);
      expect(await client.notifyState("user.uid.501.x")).toBe(2n);
      expect(await client.notifyState("user.uid.0.y")).toBe(0n);
    });

    it("what notifyd refuses anyway ends as notify_failed, with its status", async () => {
      // A broker told the wrong uid: the rule lets the name through, notifyd does not.
      const center = new FakeNotifyd(501);
      memory = await startMemoryBroker({ notifier: new DarwinNotifier(PREFIX, 64, { uid: 0, center }) });
      const client = await memory.client({ identity: identity(0) });
      const error = await client.notifyState("user.uid.0.x").catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "notify_failed" });
      expect(String((error as Error).message)).toContain("not authorized (notify status 7)");
      expect(await client.notifyState("app.fine")).toBe(0n);
    });
  });

  describe("registrations", () => {
    it("holds at most MAX_NOTIFY_STATE_TOKENS, releasing the least recently used", () => {
      const center = new FakeNotifyd(501);
      const notifier = new DarwinNotifier(PREFIX, 4096, { uid: 501, center });
      for (let i = 0; i < MAX_NOTIFY_STATE_TOKENS + 50; i++) notifier.published(`s${i}`, i + 1);
      expect(center.held.size).toBe(MAX_NOTIFY_STATE_TOKENS);
      expect(center.held.has(`${PREFIX}.s0`)).toBe(false);
      expect(center.held.has(`${PREFIX}.s${MAX_NOTIFY_STATE_TOKENS + 49}`)).toBe(true);
      notifier.close();
      expect(center.held.size).toBe(0);
    });

    it("a lower maxNotifySlots lowers the bound", () => {
      const center = new FakeNotifyd(501);
      const notifier = new DarwinNotifier(PREFIX, 8, { uid: 501, center });
      for (let i = 0; i < 20; i++) notifier.published(`s${i}`, i + 1);
      expect(center.held.size).toBe(8);
    });

    it("posts without a state take no registration", () => {
      const center = new FakeNotifyd(501);
      const notifier = new DarwinNotifier(PREFIX, 64, { uid: 501, center });
      notifier.post("app.ping", undefined);
      expect(center.calls).toEqual(["post app.ping"]);
      expect(center.registrations).toBe(0);
    });

    it("a failed registration leaves no bookkeeping behind", () => {
      const center = new FakeNotifyd(501);
      const notifier = new DarwinNotifier(PREFIX, 64, { uid: 0, center });
      expect(() => notifier.state("user.uid.0.x")).toThrow(expect.objectContaining({ code: "native_failed", notifyStatus: 7 }));
      expect(center.held.size).toBe(0);
    });
  });

  describe("restoring a state notifyd forgot", () => {
    /** Posts `name` with `state`, then pushes its registration out with other posts. */
    function postThenEvict(notifier: DarwinNotifier, name: string, state: bigint): void {
      notifier.post(name, state);
      for (let i = 0; i < MAX_NOTIFY_STATE_TOKENS; i++) notifier.published(`filler${i}`, 1);
    }

    it("notifyd frees the name with the broker's registration; the broker sets the state again when it reads it", () => {
      const center = new FakeNotifyd(501);
      const notifier = new DarwinNotifier(PREFIX, 4096, { uid: 501, center });
      postThenEvict(notifier, "app.level", 7n);
      expect(center.names.has("app.level")).toBe(false);
      expect(notifier.state("app.level")).toBe(7n);
      expect(center.names.get("app.level")?.state).toBe(7n);
      // Set without a post: nobody is woken by a read.
      expect(center.calls.filter((c) => c.startsWith("post app.level"))).toEqual(["post app.level 7"]);
    });

    it("a post without a state restores first, so its watchers wake to the last state, not 0", () => {
      const center = new FakeNotifyd(501);
      const notifier = new DarwinNotifier(PREFIX, 4096, { uid: 501, center });
      postThenEvict(notifier, "app.level", 9n);
      notifier.post("app.level", undefined);
      expect(center.names.get("app.level")?.state).toBe(9n);
      expect(center.calls.at(-1)).toBe("post app.level");
    });

    it("a subject's name is restored to its last seq for the watch op", () => {
      const center = new FakeNotifyd(501);
      const notifier = new DarwinNotifier(PREFIX, 4096, { uid: 501, center });
      notifier.published("demo.temp", 41);
      for (let i = 0; i < MAX_NOTIFY_STATE_TOKENS; i++) notifier.published(`filler${i}`, 1);
      expect(notifier.watch(`${PREFIX}.demo.temp`, 0n)).toEqual({ state: 41n });
    });

    it("leaves alone a state another process set while the name stayed alive", () => {
      const center = new FakeNotifyd(501);
      const notifier = new DarwinNotifier(PREFIX, 4096, { uid: 501, center });
      center.other("app.level"); // a watcher keeps the name alive in notifyd
      postThenEvict(notifier, "app.level", 5n);
      center.names.get("app.level")!.state = 12n; // someone posted it directly
      expect(notifier.state("app.level")).toBe(12n);
      expect(center.names.get("app.level")?.state).toBe(12n);
    });

    it("while the broker holds the registration, reads are notifyd's", () => {
      const center = new FakeNotifyd(501);
      const notifier = new DarwinNotifier(PREFIX, 4096, { uid: 501, center });
      notifier.post("app.level", 3n);
      center.names.get("app.level")!.state = 0n; // set to 0 by another process
      expect(notifier.state("app.level")).toBe(0n);
    });
  });

  it("the SDK sees a restored state through the broker", async () => {
    const center = new FakeNotifyd(501);
    const notifier = new DarwinNotifier(PREFIX, 2, { uid: 501, center });
    memory = await startMemoryBroker({ notifier });
    const client = await connect({ transport: memory.transport.as(identity(501)), reconnect: false });
    try {
      await client.post("app.a", 11n);
      await client.post("app.b", 1n);
      await client.post("app.c", 1n);
      expect(center.names.has("app.a")).toBe(false);
      expect(await client.notifyState("app.a")).toBe(11n);
    } finally {
      await client.close();
    }
  });
});

function identity(uid: number): PeerIdentity {
  return { pid: process.pid, uid, gid: uid, exe: process.execPath, exeVerified: true, method: "test" };
}
