// `xpcbus status --watch` / `xpcbus top`: the view's arithmetic and layout in
// process, and the live command against a real broker with a real publisher.
import { afterAll, describe, expect, it } from "vitest";
import type { BrokerStatus, PeerStatus } from "../protocol/index.js";
import { renderView, statusView, truncateStart, type Sample } from "./cli/status-view.js";
import { cleanup, runCli, spawnCli, spawnClient, startBroker, waitForSubscription } from "./test-support/harness.js";

afterAll(cleanup);

function peer(fields: Partial<PeerStatus> & { id: number }): PeerStatus {
  return {
    name: `peer${fields.id}`,
    transport: "unix",
    pid: 1000 + fields.id,
    uid: 1000,
    gid: 1000,
    exe: "/usr/local/lib/nodejs/node-v20.11.1-linux-x64/bin/node",
    exeVerified: true,
    identityMethod: "so_peerpidfd",
    connectedAt: "2026-01-01T00:00:00.000Z",
    subscriptionCount: 0,
    subscriptions: [],
    msgsIn: 0,
    msgsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    dropped: 0,
    ...fields,
  };
}

function sample(atMs: number, peers: PeerStatus[], extra: Partial<BrokerStatus> = {}): Sample {
  const subjects = new Map<string, number>();
  for (const p of peers) for (const sub of p.subscriptions) subjects.set(sub.subject, (subjects.get(sub.subject) ?? 0) + 1);
  return {
    atMs,
    status: {
      server: "xpcbus/0.1.0",
      pid: 42,
      startedAt: "2026-01-01T00:00:00.000Z",
      peers,
      subjectCount: subjects.size,
      subjects: [...subjects].map(([subject, subscribers]) => ({ subject, subscribers })),
      retained: { count: 0, bytes: 0, maxCount: 10, maxBytes: 100 },
      publishedCount: 0,
      published: [],
      pendingRequests: 0,
      ...extra,
    },
  };
}

describe("the status view (in process)", () => {
  const sub = (id: number, subject: string) => ({ id, subscriptionCount: 1, subscriptions: [{ sid: 1, subject }] });

  it("turns counter deltas into msgs/s per peer and per subject; the first refresh and a restarted broker have none", () => {
    const before = sample(0, [peer({ id: 1, msgsIn: 100 }), peer({ ...sub(2, "a.>"), msgsOut: 50, dropped: 1 })]);
    const after = sample(500, [peer({ id: 1, msgsIn: 600 }), peer({ ...sub(2, "a.>"), msgsOut: 550, dropped: 3 }), peer({ ...sub(3, "a.>"), msgsOut: 20 })]);
    const first = statusView(before, undefined);
    expect(first.intervalMs).toBeNull();
    expect(first.peers.every((p) => p.inPerSec === null && p.outPerSec === null)).toBe(true);
    const view = statusView(after, before);
    expect(view.intervalMs).toBe(500);
    const byId = new Map(view.peers.map((p) => [p.id, p]));
    expect(byId.get(1)).toMatchObject({ inPerSec: 1000, outPerSec: 0 });
    expect(byId.get(2)).toMatchObject({ outPerSec: 1000, dropped: 3, droppedPerSec: 4 });
    // Connected since the last refresh: everything it counted is in this interval.
    expect(byId.get(3)).toMatchObject({ outPerSec: 40 });
    expect(view.subjects).toEqual([{ subject: "a.>", subscribers: 2, inPerSec: null, outPerSec: 1040, exact: true }]);
    // Publishes per subject come from the broker's `published` counters; a subject only a pattern names gets a row of its own.
    const published = statusView(
      sample(500, after.status.peers, { published: [{ subject: "a.b", seq: 700, messages: 600 }], publishedCount: 1 }),
      sample(0, before.status.peers, { published: [{ subject: "a.b", seq: 200, messages: 100 }], publishedCount: 1 }),
    );
    expect(published.subjects).toContainEqual({ subject: "a.b", subscribers: 0, inPerSec: 1000, outPerSec: null, exact: true });
    const restarted = statusView(sample(1000, after.status.peers, { pid: 43 }), after);
    expect(restarted.peers.every((p) => p.inPerSec === null)).toBe(true);
  });

  it("marks a subject's rate as an upper bound when a subscriber holds other subscriptions too", () => {
    const two = { id: 1, subscriptionCount: 2, subscriptions: [{ sid: 1, subject: "a" }, { sid: 2, subject: "b" }] };
    const view = statusView(sample(1000, [peer({ ...two, msgsOut: 10 })]), sample(0, [peer(two)]));
    expect(view.subjects.map((s) => [s.subject, s.outPerSec, s.exact])).toEqual([["a", 10, false], ["b", 10, false]]);
    expect(renderView(view, { columns: 80, rows: 24 }).join("\n")).toMatch(/≤10\s+a/);
  });

  it("fits the terminal's width, cutting exe paths from the start; a pipe gets them whole", () => {
    const view = statusView(sample(0, Array.from({ length: 3 }, (_, i) => peer({ id: i + 1 }))), undefined);
    for (const columns of [60, 80, 200]) {
      const lines = renderView(view, { columns, rows: 24 });
      for (const line of lines) expect(line.length, line).toBeLessThanOrEqual(columns);
    }
    expect(renderView(view, { columns: 60, rows: 24 }).join("\n")).toMatch(/…[^\s]*\/bin\/node$/m);
    expect(renderView(view, { columns: Infinity, rows: Infinity }).join("\n")).toContain("/usr/local/lib/nodejs/node-v20.11.1-linux-x64/bin/node");
    expect(truncateStart("/a/b/c", 4)).toBe("…b/c");
  });

  it("summarises the peers a short terminal has no rows for", () => {
    const view = statusView(sample(0, Array.from({ length: 40 }, (_, i) => peer({ id: i + 1 }))), undefined);
    const lines = renderView(view, { columns: 100, rows: 20 });
    expect(lines.length).toBeLessThanOrEqual(20);
    expect(lines.some((l) => /^… \d+ more peers$/.test(l))).toBe(true);
  });
});

describe("xpcbus status --watch / top", () => {
  it("--json prints one line per refresh, with non-zero msgs/s for a running publisher and its subscriber", async () => {
    const broker = await startBroker();
    const s = ["--socket", broker.socket];
    const subscriber = spawnCli(["sub", "live.ticks", ...s]);
    await waitForSubscription(broker.socket, "live.ticks");
    const publisher = spawnClient(
      broker.socket,
      `const bus = await connect({ socket, name: "ticker" });
       emit("ready");
       for (;;) { await bus.publish("live.ticks", "t"); await new Promise((r) => setTimeout(r, 5)); }`,
    );
    await publisher.event("ready");
    const watch = await runCli(["status", "--watch", "--json", "--interval", "300", "--count", "2", ...s]);
    expect(watch.code, watch.stderr).toBe(0);
    const lines = watch.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as ReturnType<typeof statusView>);
    expect(lines).toHaveLength(2);
    expect(lines[0]!.intervalMs).toBeNull();
    const last = lines[1]!;
    expect(last.intervalMs).toBeGreaterThan(0);
    const ticker = last.peers.find((p) => p.pid === publisher.pid);
    expect(ticker).toMatchObject({ name: "ticker", exe: process.execPath });
    expect(ticker!.inPerSec).toBeGreaterThan(0);
    expect(last.peers.find((p) => p.pid === subscriber.child.pid)!.outPerSec).toBeGreaterThan(0);
    expect(last.subjects.find((x) => x.subject === "live.ticks")!.outPerSec).toBeGreaterThan(0);

    // top is the same view; into a pipe it appends one block per refresh.
    const top = await runCli(["top", "--interval", "100", "--count", "2", ...s]);
    expect(top.code, top.stderr).toBe(0);
    expect(top.stdout).not.toContain("\u001b[");
    expect(top.stdout.match(/^xpcbus\/\S+ {2}pid \d+/gm)).toHaveLength(2);
    expect(top.stdout).toMatch(/^ID\s+NAME\s+PID\s+IN\/s\s+OUT\/s\s+DROPPED\s+QUEUE B\s+SUBS\s+EXE$/m);
    expect(top.stdout).toMatch(/^IN\/s\s+SUBSCRIBERS\s+OUT\/s\s+SUBJECT$/m);
    expect(top.stdout).toMatch(/ticker/);
    expect((await runCli(["status", "--interval", "100", ...s])).code).toBe(2);
    publisher.kill();
  });
});
