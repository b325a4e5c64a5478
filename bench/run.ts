// `npm run bench` (quick profile, a few minutes on 2 cores), `-- --full` for
// the whole matrix, `-- --only <scenario>`. Progress on stderr, a line per
// step with an ETA; results to bench/results/<timestamp>.json, the report
// to bench/results/<timestamp>.md and latest.md, the chart to latest.svg.
// Every number is measured; a scenario that fails is reported as failed.

import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { join } from "node:path";
import { DIST } from "./support/processes.js";
import { chart, markdown, type RunResults } from "./support/report.js";
import { run as floors } from "./floors.bench.js";
import { run as compare } from "./compare.bench.js";
import { run as delivery, type Mode } from "./update-delivery.bench.js";
import { run as throughput } from "./throughput.bench.js";
import { run as notify } from "./notify.bench.js";
import { run as slowConsumer } from "./slow-consumer.bench.js";
import { run as burst } from "./burst.bench.js";
import { run as pubStdin } from "./pub-stdin.bench.js";
import { run as cliStartup } from "./cli-startup.bench.js";
import { run as store } from "./store.bench.js";
import { run as bridge } from "./bridge.bench.js";
import type { SystemName } from "./support/systems.js";

export const SCENARIOS = ["floors", "compare", "update-delivery", "throughput", "notify", "slow-consumer", "burst", "pub-stdin", "cli-startup", "store", "bridge"] as const;
type Scenario = (typeof SCENARIOS)[number];

export interface BenchOptions {
  profile: "quick" | "full" | "tiny";
  only?: Scenario;
  outDir: string;
}

// The burst: 10,000 × 64 B to 100 subscriber processes; at most 512 messages
// ahead of the slowest subscriber (burst.bench.ts says why the bound).
const BURST = { subscribers: 100, messages: 10_000, window: 512, systems: undefined as SystemName[] | undefined };
// quick leaves Mosquitto out of the burst: at this size it takes ~50 s, a
// sixth of the profile, at ~15× NATS's CPU per delivery (--full has it).
const QUICK_BURST = { ...BURST, systems: ["xpcbus", "nats", "redis"] as SystemName[] | undefined };

// quick: under 5 minutes on 2 cores. It leaves out 100 clients polling every
// 10 ms (10,000 gets/s saturate both cores for the rest of the run); --full has it.
// What quick and full share and tiny trades for speed: a broker per delivery
// cell, the scenarios' own settle times, and the notify scenario's defaults.
const MEASURED = {
  sharedBroker: false,
  settleMs: undefined as number | undefined,
  settleWhenComplete: false,
  notify: {},
};

const PROFILES = {
  // tiny: the harness itself, for bench/bench.test.ts, in a few seconds. Every
  // scenario and every delivery mode runs, with as few processes and as short
  // windows as still exercise them: one broker for all delivery cells, a
  // second client count only for push (every client must get every update).
  tiny: {
    counts: [1, 2],
    rates: [{ perSecond: 20, windowMs: 200 }],
    idleMs: 50,
    skip: (mode: Mode, clients: number) => clients > 1 && mode.mode !== "push",
    sharedBroker: true,
    settleMs: 20,
    settleWhenComplete: true,
    single: 100,
    fanoutSubs: 2,
    fanoutMsgs: 10,
    tp: 500,
    tpSystems: ["xpcbus"] as SystemName[] | undefined,
    // A window under the message count, so credit flows; every configuration and both publish kinds.
    store: { messages: 500, rounds: 1, acks: 20, ackWarmup: 5, subjects: 5 },
    stdinLines: 1000,
    startupRuns: 2,
    floor: 100,
    slowConsumer: 1000,
    notify: { posts: 200, wakeWatchers: [1], wakePublishes: 20, asleepMs: 50 },
    // xpcbus only: each peer's start and its client library's load cost more
    // than the whole scenario; a window under the message count, so credit flows.
    burst: { subscribers: 3, messages: 200, window: 64, systems: ["xpcbus"] as SystemName[] | undefined },
    bridge: { messages: 500, latencyMessages: 20, latencyWarmup: 5 },
  },
  quick: {
    counts: [1, 10, 100],
    rates: [
      { perSecond: 50, windowMs: 1500 },
      { perSecond: 1, windowMs: 3000 },
    ],
    idleMs: 1000,
    skip: (mode: Mode, clients: number) => mode.intervalMs === 10 && clients >= 100,
    single: 2000,
    fanoutSubs: 100,
    fanoutMsgs: 100,
    tp: 200_000,
    tpSystems: undefined,
    // ~35 s on 2 cores: 18 runs 1 → 1 (3 configurations × plain, retained × 3 rounds), 3 × 2200 acks.
    store: { messages: 50_000, rounds: 3, acks: 1500, ackWarmup: 150, subjects: 100 },
    stdinLines: 200_000,
    startupRuns: 10,
    floor: 2000,
    slowConsumer: 50000,
    ...MEASURED,
    burst: QUICK_BURST,
    // ~10 s on 2 cores: three daemons-and-NATS paths × (50,000 flat out + 1100 at 1 ms).
    bridge: { messages: 30_000, latencyMessages: 1000, latencyWarmup: 100 },
  },
  full: {
    counts: [1, 10, 100, 1000],
    rates: [
      { perSecond: 50, windowMs: 5000 },
      { perSecond: 1, windowMs: 10000 },
    ],
    idleMs: 5000,
    skip: undefined,
    single: 10000,
    fanoutSubs: 100,
    fanoutMsgs: 500,
    tp: 500_000,
    tpSystems: undefined,
    store: { messages: 500_000, rounds: 5, acks: 10_000, ackWarmup: 1000, subjects: 100 },
    stdinLines: 500_000,
    startupRuns: 10,
    floor: 10000,
    slowConsumer: 50000,
    ...MEASURED,
    burst: BURST,
    bridge: { messages: 500_000, latencyMessages: 10_000, latencyWarmup: 1000 },
  },
};

export async function runBench(options: BenchOptions): Promise<RunResults> {
  const p = PROFILES[options.profile];
  const started = Date.now();
  const results: RunResults = {
    machine: { cpu: cpus()[0]?.model, cores: cpus().length, kernel: release(), node: process.version },
    profile: options.profile,
    startedAt: new Date(started).toISOString(),
    durationS: 0,
    failures: [],
  };
  const wanted = (s: Scenario): boolean => options.only === undefined || options.only === s;
  const steps = SCENARIOS.filter(wanted);
  let done = 0;
  const progress = (line: string): void => {
    const elapsed = (Date.now() - started) / 1000;
    const eta = done > 0 ? Math.round((elapsed / done) * (steps.length - done)) : undefined;
    process.stderr.write(`bench [${done}/${steps.length}] ${Math.round(elapsed)} s${eta === undefined ? "" : `, ETA ~${eta} s`}: ${line}\n`);
  };
  const attempt = async (scenario: Scenario, body: () => Promise<void>): Promise<void> => {
    if (!wanted(scenario)) return;
    progress(`${scenario} starting`);
    try {
      await body();
    } catch (error) {
      results.failures.push({ scenario, error: (error as Error).stack ?? String(error) });
      progress(`${scenario} FAILED: ${(error as Error).message}`);
    }
    done++;
  };
  await attempt("floors", async () => {
    results.floors = await floors({ messages: p.floor, payloadBytes: 64, intervalMs: 1 });
  });
  await attempt("compare", async () => {
    results.compare = await compare({
      single: { messages: p.single, spacingMs: 1 },
      fanout: { subscribers: p.fanoutSubs, messages: p.fanoutMsgs, spacingMs: 20 },
      payloadBytes: 64,
      progress,
    });
  });
  await attempt("update-delivery", async () => {
    results.delivery = await delivery({ counts: p.counts, rates: p.rates, idleMs: p.idleMs, skip: p.skip, sharedBroker: p.sharedBroker, settleMs: p.settleMs, settleWhenComplete: p.settleWhenComplete, progress });
  });
  await attempt("throughput", async () => {
    results.throughput = await throughput({ messages: p.tp, payloads: [64, 4096], systems: p.tpSystems, progress });
  });
  if (process.platform === "linux") {
    await attempt("notify", async () => {
      results.notify = await notify(p.notify);
    });
  }
  await attempt("slow-consumer", async () => {
    results.slowConsumer = await slowConsumer({ messages: p.slowConsumer });
  });
  await attempt("burst", async () => {
    results.burst = await burst({ ...p.burst, payloadBytes: 64, progress });
  });
  await attempt("pub-stdin", async () => {
    results.pubStdin = await pubStdin({ lines: p.stdinLines });
  });
  await attempt("cli-startup", async () => {
    results.cliStartup = await cliStartup({ runs: p.startupRuns });
  });
  await attempt("store", async () => {
    results.store = await store({ ...p.store, payloadBytes: 64, progress });
  });
  await attempt("bridge", async () => {
    results.bridge = await bridge({ ...p.bridge, payloadBytes: 64, progress });
  });
  results.durationS = Math.round((Date.now() - started) / 1000);
  mkdirSync(options.outDir, { recursive: true });
  const stamp = results.startedAt.replace(/[:.]/g, "-");
  const report = markdown(results);
  const json = `${JSON.stringify(results, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v), 2)}\n`;
  writeFileSync(join(options.outDir, `${stamp}.json`), json);
  writeFileSync(join(options.outDir, `${stamp}.md`), report);
  writeFileSync(join(options.outDir, "latest.md"), report);
  writeFileSync(join(options.outDir, "latest.svg"), chart(results));
  return results;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split("/").slice(-3).join("/"));
if (invokedDirectly) {
  const args = process.argv.slice(2);
  const onlyIndex = args.indexOf("--only");
  const only = onlyIndex >= 0 ? (args[onlyIndex + 1] as Scenario) : undefined;
  if (only !== undefined && !(SCENARIOS as readonly string[]).includes(only)) {
    process.stderr.write(`bench: unknown scenario "${only}"; known: ${SCENARIOS.join(", ")}\n`);
    process.exit(2);
  }
  const profile = args.includes("--full") ? "full" : "quick";
  const results = await runBench({ profile, only, outDir: join(DIST, "..", "bench", "results") });
  process.stdout.write(markdown(results));
  process.exitCode = results.failures.length > 0 ? 1 : 0;
}
