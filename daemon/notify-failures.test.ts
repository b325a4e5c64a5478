// A notifier that fails never stops the broker: every notify op it fails is
// answered `err` (its own wire code for a refusal it decided, else
// notify_failed with what the system said), a publish it fails to post is
// still delivered, and the connection and the broker keep serving. In
// process, over the memory transport, with notifiers that throw.
import { afterEach, describe, expect, it } from "vitest";
import { XpcbusError, type NotifyInfo } from "../protocol/index.js";
import type { Notifier, NotifyRefusal, NotifyRegistration } from "./core/notifier.js";
import { startMemoryBroker, type MemoryBroker } from "./test-support/memory-broker.js";

let memory: MemoryBroker | undefined;
afterEach(async () => {
  await memory?.stop();
  memory = undefined;
});

/** A notifier whose every call throws what `fail` makes: notifyd refusing, as NotifyPoster reports it. */
class ThrowingNotifier implements Notifier {
  readonly info: NotifyInfo = { mechanism: "notify(3)", prefix: "io.xpcbus.test" };
  publishes = 0;

  constructor(readonly fail: (call: string) => unknown) {}

  subjectOf(name: string): string | undefined {
    return name.startsWith("io.xpcbus.test.") ? name.slice("io.xpcbus.test.".length) : undefined;
  }
  published(): void {
    this.publishes++;
    throw this.fail("published");
  }
  watch(): NotifyRegistration | NotifyRefusal {
    throw this.fail("watch");
  }
  unwatch(): void {
    throw this.fail("unwatch");
  }
  post(): void {
    throw this.fail("post");
  }
  state(): bigint {
    throw this.fail("state");
  }
  close(): void {}
}

const notAuthorized = (call: string): Error =>
  Object.assign(new Error(`${call}: notify_register_dispatch(user.uid.0.x): not authorized (notify status 7)`), { status: 7 });

describe("a notifier that throws", () => {
  it("answers watch, state and post with notify_failed, saying what was refused, and the broker keeps serving", async () => {
    memory = await startMemoryBroker({ notifier: new ThrowingNotifier(notAuthorized) });
    const peer = await memory.greeted();
    peer.send({ op: "state", name: "user.uid.0.x", id: 1 });
    peer.send({ op: "watch", name: "user.uid.0.x", id: 2 });
    peer.send({ op: "post", name: "app.reload", state: 3, id: 3 });
    for (const [id, op] of [
      [1, "state"],
      [2, "watch"],
      [3, "post"],
    ] as const) {
      const err = await peer.errFor(id);
      expect(err).toMatchObject({ code: "notify_failed" });
      expect(err["reason"]).toContain(`${op} of "`);
      expect(err["reason"]).toContain("not authorized (notify status 7)");
    }
    await peer.alive(4);
    // A failed watch is not counted: unwatch says so, and nothing else breaks.
    peer.send({ op: "unwatch", name: "user.uid.0.x", id: 5 });
    expect(await peer.errFor(5)).toMatchObject({ code: "not_watching" });
    expect(memory.broker.peerCount).toBe(1);
  });

  it("keeps the notifier's own wire code when it refuses with one", async () => {
    memory = await startMemoryBroker({ notifier: new ThrowingNotifier(() => new XpcbusError("reserved_name", "not this broker's name")) });
    const peer = await memory.greeted();
    peer.send({ op: "state", name: "user.uid.7.x", id: 1 });
    expect(await peer.errFor(1)).toMatchObject({ code: "reserved_name", reason: "not this broker's name" });
    await peer.alive(2);
  });

  it("a non-Error throw is notify_failed too", async () => {
    memory = await startMemoryBroker({ notifier: new ThrowingNotifier(() => "a string") });
    const peer = await memory.greeted();
    peer.send({ op: "state", name: "a.b", id: 1 });
    expect(await peer.errFor(1)).toMatchObject({ code: "notify_failed", reason: 'state of "a.b" failed: a string' });
  });

  it("still delivers and acknowledges a publish whose post failed", async () => {
    const notifier = new ThrowingNotifier(notAuthorized);
    memory = await startMemoryBroker({ notifier });
    const sub = await memory.client();
    const subscription = await sub.subscribe("demo.temp");
    const pub = await memory.client();
    const first = await pub.publish("demo.temp", 1);
    const second = await pub.publish("demo.temp", 2);
    expect(second.seq!).toBeGreaterThan(first.seq!);
    const got: unknown[] = [];
    for await (const m of subscription) {
      got.push(m.data);
      if (got.length === 2) break;
    }
    expect(got).toEqual([1, 2]);
    expect(notifier.publishes).toBe(2);
  });

  it("a leaving peer's unwatch that throws does not stop the broker", async () => {
    let failUnwatch = false;
    const notifier = new ThrowingNotifier((call) => (call === "unwatch" && failUnwatch ? new Error("unwatch failed") : new Error(call)));
    notifier.watch = () => ({ state: 0n });
    memory = await startMemoryBroker({ notifier });
    const leaving = await memory.greeted();
    leaving.send({ op: "watch", name: "a.b", id: 1 });
    await leaving.next((m) => m["op"] === "ok" && m["id"] === 1);
    failUnwatch = true;
    leaving.destroy();
    const other = await memory.greeted();
    await other.alive(1);
  });
});
