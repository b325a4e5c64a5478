// A full retained space refuses, it never evicts (issue 15, "never evict
// someone's state silently"): the refused publish gets `retained_full` and is
// neither numbered nor delivered, every value kept stays, and one uid at its
// quota does not stop another. Over the in-memory transport, with peers of
// given uids, through the real broker core and SDK.
import { afterEach, describe, expect, it } from "vitest";
import { startMemoryBroker, type MemoryBroker } from "./test-support/memory-broker.js";

const id = (uid: number) => ({ pid: 1000 + uid, uid, gid: uid, exe: "/usr/bin/node", exeVerified: true, method: "test" });
const OWNER = 500;
const ALICE = 501;
const BOB = 502;

let memory: MemoryBroker | undefined;
afterEach(async () => {
  await memory?.stop();
  memory = undefined;
});

describe("a full retained space", () => {
  it("refuses the next retained publish with retained_full, keeps every value, and lets another uid retain up to its own quota", async () => {
    memory = await startMemoryBroker({ ownerUid: OWNER, limits: { maxRetainedEntries: 6, maxRetainedEntriesPerUid: 3 } });
    const alice = await memory.client({ identity: id(ALICE) });
    const bob = await memory.client({ identity: id(BOB) });
    const owner = await memory.client({ identity: id(OWNER) });
    const watcher = await memory.client({ identity: id(OWNER) });
    const seen: string[] = [];
    await watcher.subscribe("app.>", { callback: (m) => seen.push(`${m.subject}=${String(m.data)}`) });

    for (const n of [1, 2, 3]) await alice.publish(`app.alice.${n}`, `a${n}`, { retain: true });
    // Alice is at her quota: refused whole (not numbered, not delivered), nothing of hers or anyone's dropped.
    await expect(alice.publish("app.alice.4", "a4", { retain: true })).rejects.toMatchObject({
      code: "retained_full",
      message: expect.stringContaining("uid 501 is at its retained quota (3 of 3 values"),
    });
    // Replacing her own value needs no new room; a plain publish is not retained and not refused.
    await alice.publish("app.alice.1", "a1bis", { retain: true });
    await alice.publish("app.alice.4", "plain");
    // Bob is not stopped by Alice.
    for (const n of [1, 2]) await bob.publish(`app.bob.${n}`, `b${n}`, { retain: true });
    // The owner's apps are held to the total only: one left.
    await owner.publish("app.owner.1", "o1", { retain: true });
    await expect(owner.publish("app.owner.2", "o2", { retain: true })).rejects.toMatchObject({
      code: "retained_full",
      message: expect.stringContaining("the retained space is full (6 of 6 values"),
    });
    await expect(bob.publish("app.bob.3", "b3", { retain: true })).rejects.toMatchObject({ code: "retained_full" });

    for (const [subject, data] of [["app.alice.1", "a1bis"], ["app.alice.2", "a2"], ["app.alice.3", "a3"], ["app.bob.1", "b1"], ["app.bob.2", "b2"], ["app.owner.1", "o1"]]) {
      expect(await owner.get(subject!)).toMatchObject({ found: true, data });
    }
    expect(await owner.get("app.alice.4")).toMatchObject({ found: false });
    await watcher.flush();
    expect(seen).not.toContain("app.alice.4=a4");
    expect(seen).not.toContain("app.owner.2=o2");
    expect(seen).toContain("app.alice.4=plain");

    // Clearing makes room again; status shows the use per uid.
    await alice.publish("app.alice.2", "", { retain: true });
    await owner.publish("app.owner.2", "o2", { retain: true });
    const status = await owner.status();
    expect(status.retained).toMatchObject({ count: 6, maxCount: 6, maxCountPerUid: 3 });
    expect(status.retained.byUid).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ uid: ALICE, count: 2 }),
        expect.objectContaining({ uid: BOB, count: 2 }),
        expect.objectContaining({ uid: OWNER, count: 2 }),
      ]),
    );
  });

  it("tells an unacknowledged publisher too, without an id", async () => {
    memory = await startMemoryBroker({ limits: { maxRetainedEntries: 1 } });
    const client = await memory.client({ identity: id(ALICE) });
    const errors: Array<{ code: string; subject?: string }> = [];
    client.on("brokerError", (error) => errors.push({ code: error.code }));
    await client.publish("one", "1", { retain: true });
    await client.publish("two", "2", { retain: true, ack: false });
    await client.flush();
    expect(errors).toEqual([{ code: "retained_full" }]);
    expect(await client.get("two")).toMatchObject({ found: false });
  });
});
