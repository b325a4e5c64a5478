// Scenario: the notify path on Linux.
// 1. Broker time per post (TableNotifier.published, as the broker calls it on
//    every publish) with 0, 1, 10, 100, 1000 watchers, counted two ways:
//    watchers that only check (registered, not sleeping: the notifyd fast
//    path) and watchers asleep in the kernel on the slot's futex word.
// 2. Wake-up latency, publish → watcher callback, with 1 and 100 watching
//    connections (real processes, real broker).

import { join } from "node:path";
import { connect } from "../client-sdk/index.js";
import { TableNotifier } from "../daemon/index.js";
import { newHistogram, summarise, type LatencySummary } from "./support/histogram.js";
import { clientScript, scratchDir, spawnNode, startBroker } from "./support/processes.js";

export interface PostCostRow {
  watchers: number;
  checkOnlyNsPerPost: number;
  sleepingNsPerPost: number;
}

export interface NotifyResult {
  scenario: "notify";
  postCost: PostCostRow[];
  unwatchedNsPerPost: number;
  wakeLatency: Array<{ watchers: number; latency: LatencySummary }>;
}

/** Posts timed per row, by default. */
export const DEFAULT_POSTS = 2_000;

/** Mean time of `published()` over `posts` posts, spaced so sleeping waiters are back asleep each time. */
async function timePosts(notifier: TableNotifier, subject: string, spacedMs: number, posts: number): Promise<number> {
  let total = 0n;
  for (let i = 0; i < posts; i++) {
    if (spacedMs > 0 && i % 20 === 0) await new Promise((r) => setTimeout(r, spacedMs));
    const start = process.hrtime.bigint();
    notifier.published(subject, i + 1);
    total += process.hrtime.bigint() - start;
  }
  return Math.round(Number(total) / posts);
}

async function postCost(dir: string, posts: number, asleepMs: number): Promise<{ rows: PostCostRow[]; unwatched: number }> {
  const path = join(dir, "bench.notify");
  const notifier = new TableNotifier({ path, prefix: "bench", slots: 4096, maxStates: 100 });
  try {
    const unwatched = await timePosts(notifier, "nobody.watches", 0, posts);
    const rows: PostCostRow[] = [];
    for (const watchers of [1, 10, 100, 1000]) {
      const subject = `post.cost.${watchers}`;
      let slot = -1;
      for (let i = 0; i < watchers; i++) {
        const r = notifier.watch(`bench.${subject}`, 0n);
        if ("slot" in r && r.slot !== undefined) slot = r.slot;
      }
      const checkOnlyNsPerPost = await timePosts(notifier, subject, 0, posts);
      const sleepers = spawnNode(clientScript("notify-sleepers"), [path, String(slot), String(watchers)]);
      await sleepers.line("ready");
      await new Promise((r) => setTimeout(r, asleepMs));
      const sleepingNsPerPost = await timePosts(notifier, subject, 5, posts);
      sleepers.child.stdin!.end();
      await sleepers.stop();
      rows.push({ watchers, checkOnlyNsPerPost, sleepingNsPerPost });
    }
    return { rows, unwatched };
  } finally {
    notifier.close();
  }
}

async function wakeLatency(dir: string, watchers: number, publishes: number): Promise<LatencySummary> {
  const socket = join(dir, `wake-${watchers}.sock`);
  const broker = await startBroker(socket);
  const processes = Math.min(watchers, 10);
  const spawned = Array.from({ length: processes }, (_, i) => {
    const share = Math.floor(watchers / processes) + (i < watchers % processes ? 1 : 0);
    return spawnNode(clientScript("notify-watchers"), [socket, "bench.wake", String(share)]);
  });
  await Promise.all(spawned.map((s) => s.line("ready")));
  const publisher = await connect({ socket, name: "bench-pub", reconnect: false });
  const sentAt = new Map<number, bigint>();
  for (let i = 0; i < publishes; i++) {
    // Same pacing as push-latency.bench.ts, so the two latencies compare.
    await new Promise((r) => setTimeout(r, 1));
    const start = process.hrtime.bigint();
    const { seq } = await publisher.publish("bench.wake", i);
    sentAt.set(seq!, start);
  }
  await new Promise((r) => setTimeout(r, 100));
  const results = await Promise.all(
    spawned.map(async (s) => {
      s.child.stdin!.end();
      return s.result<{ wakes: Array<[number, string]> }>();
    }),
  );
  await publisher.close();
  await broker.stop();
  const histogram = newHistogram();
  for (const { wakes } of results) {
    for (const [seq, at] of wakes) {
      const start = sentAt.get(seq);
      if (start !== undefined) histogram.recordValue(Number(BigInt(at) - start));
    }
  }
  return summarise(histogram);
}

export async function run(
  options: {
    /** Posts timed per post-cost row (default DEFAULT_POSTS). */
    posts?: number;
    /** Watching connections of each wake-latency row (default 1 and 100). */
    wakeWatchers?: number[];
    /** Publishes per wake-latency row (default 1000). */
    wakePublishes?: number;
    /** Time given the sleeper threads to be asleep in the kernel before posts are timed (default 200 ms). */
    asleepMs?: number;
  } = {},
): Promise<NotifyResult> {
  const dir = scratchDir();
  try {
    const { rows, unwatched } = await postCost(dir.path, options.posts ?? DEFAULT_POSTS, options.asleepMs ?? 200);
    const wake: NotifyResult["wakeLatency"] = [];
    for (const watchers of options.wakeWatchers ?? [1, 100]) wake.push({ watchers, latency: await wakeLatency(dir.path, watchers, options.wakePublishes ?? 1000) });
    return { scenario: "notify", postCost: rows, unwatchedNsPerPost: unwatched, wakeLatency: wake };
  } finally {
    dir.remove();
  }
}
