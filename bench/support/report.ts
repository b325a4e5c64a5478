// Turns a run's results into the Markdown report and the SVG chart (CPU per
// update against latency, log scales, one mark per mode and client count).
// Ratios are against the floor and the best peer measured in the same run.

import type { BridgeResult } from "../bridge.bench.js";
import { PATH_LABELS } from "../bridge.bench.js";
import type { BurstResult, BurstRow } from "../burst.bench.js";
import type { CompareResult } from "../compare.bench.js";
import type { FloorsResult } from "../floors.bench.js";
import type { NotifyResult } from "../notify.bench.js";
import type { SlowConsumerResult } from "../slow-consumer.bench.js";
import type { ThroughputResult, ThroughputRow } from "../throughput.bench.js";
import type { PubStdinResult } from "../pub-stdin.bench.js";
import type { CliStartupResult } from "../cli-startup.bench.js";
import type { StoreResult, StoreThroughputRow } from "../store.bench.js";
import type { DeliveryRow, UpdateDeliveryResult } from "../update-delivery.bench.js";

export interface RunResults {
  machine: { cpu: string | undefined; cores: number; kernel: string; node: string };
  profile: string;
  startedAt: string;
  durationS: number;
  floors?: FloorsResult;
  compare?: CompareResult;
  delivery?: UpdateDeliveryResult;
  throughput?: ThroughputResult;
  notify?: NotifyResult;
  slowConsumer?: SlowConsumerResult;
  burst?: BurstResult;
  pubStdin?: PubStdinResult;
  cliStartup?: CliStartupResult;
  store?: StoreResult;
  bridge?: BridgeResult;
  failures: Array<{ scenario: string; error: string }>;
}

const roundMs = (ms: number): number => Math.round(ms * 1000) / 1000;
const ratio = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}×` : "n/a");

function table(header: string[], rows: Array<Array<string | number>>): string {
  return [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

/** The headline: the numbers a skeptic asks for first. */
export function headline(r: RunResults): string {
  const lines: string[] = [];
  const floor = r.floors?.node.latency.p50Us;
  const single = r.compare?.rows.filter((row) => row.subscribers === 1) ?? [];
  const fan = r.compare?.rows.filter((row) => row.subscribers > 1) ?? [];
  const ours = single.find((row) => row.system === "xpcbus");
  const redis = single.find((row) => row.system === "redis");
  const oursFan = fan.find((row) => row.system === "xpcbus");
  const nats = fan.find((row) => row.system === "nats");
  if (ours !== undefined && floor !== undefined) {
    lines.push(`- push, 1 subscriber: p50 ${ours.latency.p50Us} µs = ${ratio(ours.latency.p50Us, floor)} the Node socket floor (${floor} µs)` +
      (redis ? `, ${ratio(ours.latency.p50Us, redis.latency.p50Us)} Redis pub/sub (${redis.latency.p50Us} µs)` : ""));
  }
  if (oursFan !== undefined) {
    lines.push(`- ${oursFan.subscribers} subscribers, last one: p50 ${oursFan.latency.p50Us} µs` + (nats ? ` vs NATS ${nats.latency.p50Us} µs (${ratio(oursFan.latency.p50Us, nats.latency.p50Us)})` : ""));
    const best = fan.filter((row) => row.system !== "xpcbus").sort((a, b) => a.cpuUsPerDelivery - b.cpuUsPerDelivery)[0];
    lines.push(`- CPU per delivery: ${oursFan.cpuUsPerDelivery} µs` + (best ? ` vs best peer ${best.system} ${best.cpuUsPerDelivery} µs (${ratio(oursFan.cpuUsPerDelivery, best.cpuUsPerDelivery)})` : ""));
  }
  lines.push(...throughputHeadline(r.throughput));
  lines.push(...burstHeadline(r.burst));
  lines.push(...storeHeadline(r.store));
  lines.push(...bridgeHeadline(r.bridge));
  if (r.pubStdin !== undefined) {
    const s = r.pubStdin;
    lines.push(`- \`xpcbus pub --stdin\`, ${s.lines} lines of ${s.lineBytes} B to one subscriber: ${s.linesPerSecond} lines/s, ${s.cpuUsPerLine} µs CPU per line (CLI + broker), start-up ${s.startupMs} ms`);
  }
  if (r.cliStartup !== undefined) {
    const c = r.cliStartup;
    lines.push(`- \`xpcbus pub <subject> x\`: ${c.pubMs} ms = ${c.pubRatio}× a 4-line SDK script doing the same publish (${c.scriptMs} ms; target ≤ ${c.target}×); \`xpcbus --version\` ${c.versionMs} ms (medians of ${c.runs})`);
  }
  const rows = r.delivery?.rows ?? [];
  for (const rate of [...new Set(rows.map((row) => row.ratePerSecond))].sort((a, b) => a - b)) {
    const poll = rows.find((row) => row.mode === "poll 100 ms" && row.clients === 10 && row.ratePerSecond === rate);
    const push = rows.find((row) => row.mode === "push" && row.clients === 10 && row.ratePerSecond === rate);
    if (!poll || !push) continue;
    const pollCpu = poll.brokerCpuMs + poll.clientsCpuMs;
    const pushCpu = push.brokerCpuMs + push.clientsCpuMs;
    const versus = pushCpu > 0 ? `${(pollCpu / pushCpu).toFixed(1)}× the CPU of push (${roundMs(pushCpu)} ms)` : "push used no measurable CPU";
    lines.push(`- 10 clients, ${rate} update(s)/s: polling every 100 ms used ${roundMs(pollCpu)} ms CPU, ${versus}; staleness p50 ${poll.latency.p50Us} µs vs push ${push.latency.p50Us} µs`);
  }
  const idle = r.delivery?.idle.filter((row) => row.mode === "notify") ?? [];
  for (const row of idle) {
    lines.push(`- notify, ${row.clients} idle watcher(s), ${row.windowMs} ms: ${row.frames} frames, ${row.clientsCpuMs} ms client CPU, ${row.brokerCpuMs} ms broker CPU`);
  }
  return lines.join("\n");
}

/** 1 → 1 at the smallest payload against NATS, in the same run. */
function throughputHeadline(tp: ThroughputResult | undefined): string[] {
  if (tp === undefined) return [];
  const small = Math.min(...tp.rows.map((row) => row.payloadBytes));
  const ours = tp.rows.find((row) => row.system === "xpcbus" && row.payloadBytes === small);
  const nats = tp.rows.find((row) => row.system === "nats" && row.payloadBytes === small);
  if (ours === undefined) return [];
  return [
    `- 1 → 1, ${small} B: ${ours.messagesPerSecond} msgs/s, ${ours.cpuUsPerMessage} µs CPU per message (broker + both clients)` +
      (nats ? `; ${ratio(ours.messagesPerSecond, nats.messagesPerSecond)} NATS's rate (${nats.messagesPerSecond}/s), ${ratio(ours.cpuUsPerMessage, nats.cpuUsPerMessage)} its CPU (${nats.cpuUsPerMessage} µs)` : ""),
  ];
}

/** The burst against NATS and against the best peer (most deliveries/s; least CPU per delivery), measured in the same run. */
function burstHeadline(burst: BurstResult | undefined): string[] {
  const ours = burst?.rows.find((row) => row.system === "xpcbus");
  if (burst === undefined || ours === undefined) return [];
  const peers = burst.rows.filter((row) => row.system !== "xpcbus");
  const nats = peers.find((row) => row.system === "nats");
  const fastest = [...peers].sort((a, b) => b.deliveriesPerSecond - a.deliveriesPerSecond)[0];
  const leanest = [...peers].sort((a, b) => a.cpuUsPerDelivery - b.cpuUsPerDelivery)[0];
  const versus = (pick: (row: BurstRow) => number, unit: string, peer: BurstRow | undefined, label: string): string =>
    peer === undefined ? "" : `, ${ratio(pick(ours), pick(peer))} ${label === "NATS" ? label : `${label} ${peer.system}`} (${pick(peer)}${unit})`;
  // When NATS is the best peer too, one ratio says both.
  const both = (best: BurstRow | undefined, pick: (row: BurstRow) => number, unit: string): string =>
    best !== undefined && best === nats ? `, ${ratio(pick(ours), pick(nats))} NATS (${pick(nats)}${unit}, the best peer)` : versus(pick, unit, nats, "NATS") + versus(pick, unit, best, "best peer");
  return [
    `- burst, ${ours.messages} × ${ours.payloadBytes} B to ${ours.subscribers} subscribers: ${ours.deliveriesPerSecond} deliveries/s` + both(fastest, (row) => row.deliveriesPerSecond, "/s"),
    `- burst, CPU per delivery (broker + publisher + subscribers): ${ours.cpuUsPerDelivery} µs` + both(leanest, (row) => row.cpuUsPerDelivery, " µs"),
  ];
}

/** The store's targets: 1 → 1 with the store ≥ 0.8× the memory store's rate; a retained publish's ack p50 ≤ 2× memory's. */
function storeHeadline(st: StoreResult | undefined): string[] {
  if (st === undefined) return [];
  const lines: string[] = [];
  const memory = (publish: StoreThroughputRow["publish"]): StoreThroughputRow | undefined => st.throughput.find((row) => row.store === "memory" && row.publish === publish);
  const plain = memory("plain");
  const sqlite = st.throughput.filter((row) => row.store !== "memory");
  if (plain !== undefined && sqlite.length > 0) {
    const parts = sqlite.map((row) => {
      const base = memory(row.publish);
      return `${row.store} ${row.publish} ${row.messagesPerSecond}/s (${base ? ratio(row.messagesPerSecond, base.messagesPerSecond) : "n/a"})`;
    });
    lines.push(`- store, 1 → 1, ${plain.payloadBytes} B, against \`--store memory\` (${plain.messagesPerSecond}/s plain, ${memory("retained")?.messagesPerSecond ?? "n/a"}/s retained; target ≥ 0.80×): ${parts.join(", ")}`);
  }
  const ackBase = st.ack.find((row) => row.store === "memory");
  const ackStore = st.ack.filter((row) => row.store !== "memory");
  if (ackBase !== undefined && ackStore.length > 0) {
    lines.push(`- store, retained publish → ack p50: memory ${ackBase.latency.p50Us} µs; ` +
      ackStore.map((row) => `${row.store} ${row.latency.p50Us} µs (${ratio(row.latency.p50Us, ackBase.latency.p50Us)})`).join(", ") + " (target ≤ 2×)");
  }
  return lines;
}

/** The bridge, one direction, against NATS alone and xpcbus alone in the same run: rate, CPU, and what one hop adds to p50. */
function bridgeHeadline(br: BridgeResult | undefined): string[] {
  if (br === undefined) return [];
  if (br.skipped !== undefined) return [`- bridge: skipped: ${br.skipped}`];
  const tp = (path: string) => br.throughput.find((row) => row.path === path);
  const lat = (path: string) => br.latency.find((row) => row.path === path);
  const [bridged, nats, ours] = [tp("bridged"), tp("nats"), tp("xpcbus")];
  const lines: string[] = [];
  if (bridged !== undefined) {
    lines.push(`- bridge, A → NATS → B, ${bridged.payloadBytes} B: ${bridged.messagesPerSecond} msgs/s, ${bridged.cpuUsPerMessage} µs CPU per message (A + nats-server + B + both clients)` +
      (nats ? `; ${ratio(bridged.messagesPerSecond, nats.messagesPerSecond)} NATS alone's rate (${nats.messagesPerSecond}/s, ${nats.cpuUsPerMessage} µs)` : "") +
      (ours ? `, ${ratio(bridged.messagesPerSecond, ours.messagesPerSecond)} xpcbus alone's (${ours.messagesPerSecond}/s, ${ours.cpuUsPerMessage} µs)` : ""));
  }
  const [bl, nl, ol] = [lat("bridged"), lat("nats"), lat("xpcbus")];
  if (bl !== undefined && br.addedP50Us !== undefined) {
    lines.push(`- bridge, one-way p50 ${bl.latency.p50Us} µs: the hop adds ${br.addedP50Us.overXpcbus} µs to xpcbus alone (${ol?.latency.p50Us ?? "n/a"} µs), ${br.addedP50Us.overNats} µs to NATS alone (${nl?.latency.p50Us ?? "n/a"} µs)`);
  }
  return lines;
}

export function markdown(r: RunResults): string {
  const out: string[] = [
    `# xpcbus benchmark (${r.profile} profile)`,
    "",
    `${r.startedAt}, ${r.durationS} s. Machine: ${r.machine.cpu}, ${r.machine.cores} cores, Linux ${r.machine.kernel}, Node ${r.machine.node}.`,
    "Every process is real; latency is HdrHistogram over every delivery; CPU is time on CPU from /proc/<pid>/task/*/schedstat (ns, every thread), for brokers and clients alike.",
    "",
    "## Headline",
    "",
    headline(r),
  ];
  if (r.floors) {
    const c = "latency" in r.floors.c ? r.floors.c.latency : undefined;
    out.push("", "## Floors (one-way = round trip / 2, µs)", "", table(["path", "p50", "p90", "p99", "max"], [
      ["Node ↔ Node, Unix socket", r.floors.node.latency.p50Us, r.floors.node.latency.p90Us, r.floors.node.latency.p99Us, r.floors.node.latency.maxUs],
      ...(c ? [["C ↔ C, Unix socket pair", c.p50Us, c.p90Us, c.p99Us, c.maxUs]] : []),
    ]));
    if (!("latency" in r.floors.c)) out.push("", `C floor skipped: ${r.floors.c.skipped}`);
  }
  if (r.compare) {
    const warm = r.compare.rows[0];
    out.push("", "## Brokers side by side (same payload, same process counts)", "",
      warm === undefined ? "" : `After a warm-up of ${warm.warmup} messages (${r.compare.rows.find((row) => row.subscribers > 1)?.warmup ?? 0} with many subscribers) that is not counted, the same for every system.`, "", table(
      ["broker", "subscribers", "p50 µs", "p90 µs", "p99 µs", "max µs", "lost", "CPU µs/delivery", "vs floor p50"],
      r.compare.rows.map((row) => [row.system, row.subscribers, row.latency.p50Us, row.latency.p90Us, row.latency.p99Us, row.latency.maxUs, row.missing, row.cpuUsPerDelivery,
        r.floors ? ratio(row.latency.p50Us, r.floors.node.latency.p50Us) : "n/a"]),
    ));
    for (const s of r.compare.skipped) out.push("", `${s.system} skipped: ${s.reason}`);
  }
  if (r.delivery) {
    out.push("", "## Update delivery: poll vs push vs notify", "", "Latency: publish → the client has the new sequence number (staleness, for polling).", "", table(
      ["mode", "clients", "updates/s", "p50 µs", "p99 µs", "complete", "broker CPU ms", "clients CPU ms", "CPU µs/update", "frames/update", "bytes/update"],
      r.delivery.rows.map((row: DeliveryRow) => [row.mode, row.clients, row.ratePerSecond, row.latency.p50Us, row.latency.p99Us, row.complete ? "yes" : "NO", row.brokerCpuMs, row.clientsCpuMs, row.cpuUsPerUpdate, row.framesPerUpdate, row.bytesPerUpdate]),
    ));
    out.push("", "Idle (no updates at all):", "", table(
      ["mode", "clients", "window ms", "broker CPU ms", "clients CPU ms", "frames"],
      r.delivery.idle.map((row) => [row.mode, row.clients, row.windowMs, row.brokerCpuMs, row.clientsCpuMs, row.frames]),
    ));
  }
  if (r.throughput) {
    const tp = r.throughput;
    const natsAt = (bytes: number): ThroughputRow | undefined => tp.rows.find((row) => row.system === "nats" && row.payloadBytes === bytes);
    out.push("", "## Throughput, 1 publisher → 1 subscriber (the burst's harness, one subscriber, ~1 MiB in flight)", "",
      "Counted after a warm-up of the first fifth of the messages, the same for every system.", "", table(
      ["broker", "payload", "delivered", "msgs/s", "vs NATS", "CPU µs/msg (all)", "vs NATS", "broker CPU ms", "publisher CPU ms", "subscriber CPU ms"],
      tp.rows.map((row) => {
        const nats = natsAt(row.payloadBytes);
        return [row.system, `${row.payloadBytes} B`, row.delivered, row.messagesPerSecond, nats ? ratio(row.messagesPerSecond, nats.messagesPerSecond) : "n/a",
          row.cpuUsPerMessage, nats ? ratio(row.cpuUsPerMessage, nats.cpuUsPerMessage) : "n/a", row.brokerCpuMs, row.publisherCpuMs, row.subscriberCpuMs];
      }),
    ));
    for (const s of tp.skipped) out.push("", `${s.system} skipped: ${s.reason}`);
  }
  if (r.notify) {
    out.push("", "## Notify post cost (broker event-loop time per post, ns)", "", `A publish nobody watches: ${r.notify.unwatchedNsPerPost} ns.`, "", table(
      ["watchers", "only checking", "asleep on the slot"], r.notify.postCost.map((row) => [row.watchers, row.checkOnlyNsPerPost, row.sleepingNsPerPost]),
    ), "", "Wake-up latency, publish → watcher callback:", "", table(["watching connections", "p50 µs", "p90 µs", "p99 µs", "max µs"],
      r.notify.wakeLatency.map((w) => [w.watchers, w.latency.p50Us, w.latency.p90Us, w.latency.p99Us, w.latency.maxUs])));
  }
  if (r.slowConsumer) {
    const sc = r.slowConsumer;
    const stopped = sc.withStopped.stopped;
    out.push("", `## Slow consumer: ${sc.messages} messages of ${sc.payloadBytes} B, one \`xpcbus sub\` stopped with SIGSTOP`, "", table(
      ["run", "fast subscriber s", "vs alone", "fast one dropped", "broker peak RSS MiB", "stopped one: messages + dropped"],
      [sc.alone, sc.withStopped].map((run) => [
        run.stoppedSubscriber ? "with a stopped subscriber" : "alone",
        run.fastSeconds,
        ratio(run.fastSeconds, sc.alone.fastSeconds),
        run.fastDropped ?? 0,
        run.brokerPeakRssMiB,
        run.stopped === undefined ? "" : `${run.stopped.messages} + ${run.stopped.droppedTotal} = ${run.stopped.messages + run.stopped.droppedTotal} (${run.stopped.droppedNotices} notice${run.stopped.droppedNotices === 1 ? "" : "s"})`,
      ]),
    ));
    if (stopped !== undefined && !stopped.caughtUp) out.push("", "The stopped subscriber did NOT receive messages and drop notices adding up to what was published.");
  }
  if (r.burst) {
    const b = r.burst;
    const first = b.rows[0];
    const nats = b.rows.find((row) => row.system === "nats");
    out.push("", first === undefined ? "## Burst" : `## Burst: ${first.messages} × ${first.payloadBytes} B to ${first.subscribers} subscriber processes, at most ${first.window} ahead of the slowest`, "",
      "Deliveries/s: first publish → last delivery at the last subscriber. CPU: broker + publisher + every subscriber, over the burst.", "", table(
      ["broker", "delivered", "lost", "s", "deliveries/s", "vs NATS", "broker CPU ms", "publisher CPU ms", "subscribers CPU ms", "CPU µs/delivery", "vs NATS"],
      b.rows.map((row) => [row.system, row.delivered, row.missing, row.seconds, row.deliveriesPerSecond, nats ? ratio(row.deliveriesPerSecond, nats.deliveriesPerSecond) : "n/a",
        row.brokerCpuMs, row.publisherCpuMs, row.subscribersCpuMs, row.cpuUsPerDelivery, nats ? ratio(row.cpuUsPerDelivery, nats.cpuUsPerDelivery) : "n/a"]),
    ));
    for (const s of b.skipped) out.push("", `${s.system} skipped: ${s.reason}`);
  }
  if (r.pubStdin) {
    const s = r.pubStdin;
    out.push("", `## \`xpcbus pub --stdin\`: ${s.lines} lines of ${s.lineBytes} B, one subscriber`, "", table(
      ["received", "s (first → last message)", "lines/s", "CLI start-up ms", "CLI CPU ms", "broker CPU ms", "CPU µs/line"],
      [[s.received, s.seconds, s.linesPerSecond, s.startupMs, s.cliCpuMs, s.brokerCpuMs, s.cpuUsPerLine]],
    ));
  }
  if (r.cliStartup) {
    const c = r.cliStartup;
    out.push("", `## CLI start-up: medians of ${c.runs} runs, spawn → exit, against a running broker`, "", table(
      ["command", "ms", "vs the SDK script"],
      [
        ["`xpcbus pub <subject> x`", c.pubMs, `${c.pubRatio}× (target ≤ ${c.target}×)`],
        ["4-line SDK script: connect, publish, close", c.scriptMs, "1.00×"],
        ["`xpcbus --version`", c.versionMs, ratio(c.versionMs, c.scriptMs)],
      ],
    ));
    if (c.connectPublishMs !== undefined) {
      out.push(
        "",
        `In this process: \`connect()\` + one acknowledged publish + \`close()\`: ${c.connectPublishMs} ms (median of ${c.connectRuns}); ` +
          `of which the broker check before \`hello\` (native \`peerCredentials()\`, mean of 1000 calls on one socket): ${c.peerCredentialsUs} µs ` +
          `= ${(c.peerCredentialsShare * 100).toFixed(2)}%.`,
      );
    }
  }
  if (r.store) {
    const st = r.store;
    const first = st.throughput[0];
    const memory = (publish: StoreThroughputRow["publish"]): StoreThroughputRow | undefined => st.throughput.find((row) => row.store === "memory" && row.publish === publish);
    // Each process's share of the CPU per message: the same counted messages divide every figure.
    const share = (row: StoreThroughputRow, ms: number): number => {
      const all = row.brokerCpuMs + row.publisherCpuMs + row.subscriberCpuMs;
      return all > 0 ? Math.round((row.cpuUsPerMessage * ms) / all * 100) / 100 : 0;
    };
    out.push("", "## Store: SQLite (WAL) against `--store memory`, xpcbus only", "",
      `memory: \`--store memory\`; sqlite: the default store, \`<socket>.store.db\`, durability normal; sqlite full: \`--durability full\` (an fsync per commit). Store files on ${st.filesystem}.`);
    if (first !== undefined) {
      out.push("", `1 → 1, ${first.messages} × ${first.payloadBytes} B, the throughput scenario's harness, counted after a warm-up of ${first.warmup}; retained: every publish \`retain: true\` (one subject). ` +
        `Medians of ${first.runs.length} run${first.runs.length === 1 ? "" : "s"} per row, the configurations taking turns; the range is the runs' msgs/s.`, "", table(
        ["store", "publishes", "delivered", "msgs/s", "range", "vs memory", "CPU µs/msg (all)", "vs memory", "broker µs/msg", "publisher µs/msg", "subscriber µs/msg"],
        st.throughput.map((row) => {
          const base = memory(row.publish);
          const rates = row.runs.map((run) => run.messagesPerSecond);
          return [row.store, row.publish, row.delivered, row.messagesPerSecond, `${Math.min(...rates)}–${Math.max(...rates)}`, base ? ratio(row.messagesPerSecond, base.messagesPerSecond) : "n/a",
            row.cpuUsPerMessage, base ? ratio(row.cpuUsPerMessage, base.cpuUsPerMessage) : "n/a",
            share(row, row.brokerCpuMs), share(row, row.publisherCpuMs), share(row, row.subscriberCpuMs)];
        }),
      ));
    }
    const ackBase = st.ack.find((row) => row.store === "memory");
    const ackFirst = st.ack[0];
    if (ackFirst !== undefined) {
      out.push("", `Retained publish → ack, one at a time: ${ackFirst.publishes} after ${ackFirst.warmup} not counted, ${ackFirst.payloadBytes} B, ${ackFirst.subjects} subjects round-robin; every publish a commit of its own. The brokers run side by side and take turns publish by publish.`, "", table(
        ["store", "p50 µs", "p90 µs", "p99 µs", "max µs", "p50 vs memory", "broker CPU µs/publish"],
        st.ack.map((row) => [row.store, row.latency.p50Us, row.latency.p90Us, row.latency.p99Us, row.latency.maxUs,
          ackBase ? ratio(row.latency.p50Us, ackBase.latency.p50Us) : "n/a", row.brokerCpuUsPerPublish]),
      ));
    }
  }
  if (r.bridge) {
    const br = r.bridge;
    out.push("", "## Bridge: xpcbus → NATS → xpcbus, one direction, next to NATS alone and xpcbus alone", "",
      "One nats-server and two daemons (default store): A exports `bench.>` as `fleet.a.bench.>`, B imports `fleet.a.bench.>` taking 2 tokens off. " +
      "xpcbus alone: publisher and subscriber on A, on a subject A does not export; NATS alone: both on the nats-server (nats.js), on a subject B does not import; bridged: publisher on A, subscriber on B. The same processes for all three, in the same run.");
    if (br.skipped !== undefined) out.push("", `Skipped: ${br.skipped}`);
    const nats = br.throughput.find((row) => row.path === "nats");
    const ours = br.throughput.find((row) => row.path === "xpcbus");
    const first = br.throughput[0];
    if (first !== undefined) {
      out.push("", `Throughput, ${first.messages} × ${first.payloadBytes} B flat out, the throughput scenario's harness (~1 MiB in flight), counted after a warm-up of ${first.warmup}. CPU µs/msg: every server on the path + both clients.`, "", table(
        ["path", "delivered", "msgs/s", "vs NATS alone", "vs xpcbus alone", "CPU µs/msg (all)", "vs NATS alone", "servers CPU ms", "publisher CPU ms", "subscriber CPU ms"],
        br.throughput.map((row) => [PATH_LABELS[row.path], row.delivered, row.messagesPerSecond,
          nats ? ratio(row.messagesPerSecond, nats.messagesPerSecond) : "n/a", ours ? ratio(row.messagesPerSecond, ours.messagesPerSecond) : "n/a",
          row.cpuUsPerMessage, nats ? ratio(row.cpuUsPerMessage, nats.cpuUsPerMessage) : "n/a",
          Object.entries(row.serversCpuMs).map(([name, ms]) => `${name} ${ms}`).join(", "), row.publisherCpuMs, row.subscriberCpuMs]),
      ));
    }
    const firstLatency = br.latency[0];
    if (firstLatency !== undefined) {
      const base = br.latency.find((row) => row.path === "xpcbus");
      out.push("", `One-way latency, publish → subscriber callback: ${firstLatency.messages} messages after ${firstLatency.warmup} not counted, one every ${firstLatency.spacingMs} ms, ${firstLatency.payloadBytes} B.`, "", table(
        ["path", "p50 µs", "p90 µs", "p99 µs", "max µs", "lost", "p50 − xpcbus alone µs"],
        br.latency.map((row) => [PATH_LABELS[row.path], row.latency.p50Us, row.latency.p90Us, row.latency.p99Us, row.latency.maxUs, row.missing,
          base ? Math.round((row.latency.p50Us - base.latency.p50Us) * 100) / 100 : "n/a"]),
      ));
      if (br.addedP50Us !== undefined) out.push("", `Added by the bridge at p50: ${br.addedP50Us.overXpcbus} µs over xpcbus alone, ${br.addedP50Us.overNats} µs over NATS alone.`);
    }
  }
  if (r.failures.length > 0) {
    out.push("", "## Failures", "", ...r.failures.map((f) => `- ${f.scenario}: ${f.error}`));
  }
  return `${out.join("\n")}\n`;
}

/** CPU per update (x) against p50 latency (y), both log scale; one mark per mode and client count. */
export function chart(r: RunResults): string {
  const rows = (r.delivery?.rows ?? []).filter((row) => row.cpuUsPerUpdate > 0 && row.latency.p50Us > 0);
  const width = 720;
  const height = 440;
  const pad = { left: 70, right: 170, top: 30, bottom: 50 };
  const xs = rows.map((row) => Math.log10(row.cpuUsPerUpdate));
  const ys = rows.map((row) => Math.log10(row.latency.p50Us));
  const [x0, x1] = [Math.floor(Math.min(...xs, 1)), Math.ceil(Math.max(...xs, 2))];
  const [y0, y1] = [Math.floor(Math.min(...ys, 1)), Math.ceil(Math.max(...ys, 2))];
  const px = (v: number): number => pad.left + ((v - x0) / (x1 - x0 || 1)) * (width - pad.left - pad.right);
  const py = (v: number): number => height - pad.bottom - ((v - y0) / (y1 - y0 || 1)) * (height - pad.top - pad.bottom);
  const modes = [...new Set(rows.map((row) => row.mode))];
  const colours = ["#c0392b", "#e67e22", "#f1c40f", "#2980b9", "#27ae60", "#8e44ad", "#7f8c8d"];
  const colour = (mode: string): string => colours[modes.indexOf(mode) % colours.length] as string;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${pad.left}" y="18" font-size="14">Update delivery: CPU per update vs latency p50 (log-log; label = clients)</text>`,
  ];
  for (let e = x0; e <= x1; e++) {
    parts.push(`<line x1="${px(e)}" y1="${pad.top}" x2="${px(e)}" y2="${height - pad.bottom}" stroke="#eee"/>`, `<text x="${px(e)}" y="${height - pad.bottom + 16}" text-anchor="middle">${10 ** e} µs</text>`);
  }
  for (let e = y0; e <= y1; e++) {
    parts.push(`<line x1="${pad.left}" y1="${py(e)}" x2="${width - pad.right}" y2="${py(e)}" stroke="#eee"/>`, `<text x="${pad.left - 6}" y="${py(e) + 4}" text-anchor="end">${10 ** e} µs</text>`);
  }
  parts.push(`<text x="${(pad.left + width - pad.right) / 2}" y="${height - 12}" text-anchor="middle">CPU per update (broker + all clients)</text>`);
  parts.push(`<text transform="translate(16 ${(pad.top + height - pad.bottom) / 2}) rotate(-90)" text-anchor="middle">latency p50 (publish → client has it)</text>`);
  rows.forEach((row, i) => {
    const x = px(xs[i] as number);
    const y = py(ys[i] as number);
    parts.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="5" fill="${colour(row.mode)}"><title>${row.mode}, ${row.clients} clients: ${row.cpuUsPerUpdate} µs CPU, p50 ${row.latency.p50Us} µs</title></circle>`);
    parts.push(`<text x="${(x + 7).toFixed(1)}" y="${(y + 4).toFixed(1)}" font-size="10">${row.clients}</text>`);
  });
  modes.forEach((mode, i) => {
    const y = pad.top + 10 + i * 18;
    parts.push(`<circle cx="${width - pad.right + 20}" cy="${y}" r="5" fill="${colour(mode)}"/>`, `<text x="${width - pad.right + 32}" y="${y + 4}">${mode}</text>`);
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
