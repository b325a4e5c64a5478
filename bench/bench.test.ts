// The benchmark harness itself, at tiny counts: the JSON has its shape, every
// delivery mode delivered every update, and the report and chart are written.
// No timing is asserted: speed is reported by `npm run bench`, not tested.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runBench } from "./run.js";

const outDir = mkdtempSync(join(tmpdir(), "xpcbus-bench-"));
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

describe("benchmark harness (tiny profile)", () => {
  it("runs every scenario, loses nothing, and writes JSON, Markdown and SVG", async () => {
    const results = await runBench({ profile: "tiny", outDir });
    expect(results.failures).toEqual([]);
    const delivery = results.delivery!;
    const modes = new Set(delivery.rows.map((r) => r.mode));
    expect([...modes].sort()).toEqual(["notify", "notify+fetch", "poll 10 ms", "poll 100 ms", "poll 1000 ms", "push"]);
    // Every mode with one client; push, which must bring every update to every client, with two as well.
    expect(delivery.rows.filter((r) => r.clients === 1).map((r) => r.mode).sort()).toEqual([...modes].sort());
    expect(delivery.rows.filter((r) => r.clients === 2).map((r) => r.mode).sort()).toEqual(["push"]);
    for (const row of delivery.rows) {
      expect(row.complete, `${row.mode} with ${row.clients} clients`).toBe(true);
      expect(row.latency.count).toBeGreaterThan(0);
      expect(row.updates).toBeGreaterThan(0);
    }
    // Notify wakes by the table: no frames to the broker per update, none while idle.
    for (const row of delivery.rows.filter((r) => r.mode === "notify")) expect(row.framesPerUpdate).toBe(0);
    for (const row of delivery.idle.filter((r) => r.mode === "notify" || r.mode === "push")) expect(row.frames).toBe(0);
    const ours = results.compare!.rows.filter((r) => r.system === "xpcbus");
    expect(ours.map((r) => r.subscribers)).toEqual([1, 2]);
    for (const row of results.compare!.rows) expect(row.missing, row.system).toBe(0);
    expect(results.floors!.node.latency.count).toBe(100);
    expect(results.floors!.c).toBeDefined();
    expect(results.throughput!.rows.map((r) => r.payloadBytes)).toEqual([64, 4096]);
    for (const row of results.throughput!.rows) expect(row.delivered).toBe(row.messages);
    expect(results.pubStdin!.received).toBe(results.pubStdin!.lines);
    expect(results.pubStdin!.cliCpuMs).toBeGreaterThan(0);
    const startup = results.cliStartup!;
    expect(startup.runs).toBe(2);
    expect(startup.received).toBe(startup.expected); // every pub and every script run published
    for (const ms of [startup.pubMs, startup.scriptMs, startup.versionMs, startup.pubRatio]) expect(ms).toBeGreaterThan(0);
    for (const n of [startup.connectPublishMs, startup.peerCredentialsUs]) expect(n).toBeGreaterThan(0);
    expect(readFileSync(join(outDir, "latest.md"), "utf8")).toMatch(/## CLI start-up/);
    const sc = results.slowConsumer!;
    expect(sc.withStopped.stopped!.messages + sc.withStopped.stopped!.droppedTotal).toBe(1000);
    const burst = results.burst!.rows.find((r) => r.system === "xpcbus")!;
    expect(burst.delivered).toBe(burst.messages * burst.subscribers);
    expect(burst.publisherCpuMs).toBeGreaterThan(0); // read from /proc while the publisher was still alive
    expect(burst.subscribersCpuMs).toBeGreaterThan(0);
    expect(readFileSync(join(outDir, "latest.md"), "utf8")).toMatch(/## Burst/);
    // Every store configuration, plain and retained, lost nothing; every one acked every retained publish.
    const store = results.store!;
    const configurations = ["memory", "sqlite", "sqlite full"];
    expect(store.throughput.map((r) => `${r.store} ${r.publish}`)).toEqual([...configurations.map((c) => `${c} plain`), ...configurations.map((c) => `${c} retained`)]);
    for (const row of store.throughput) expect(row.delivered, `${row.store} ${row.publish}`).toBe(row.messages);
    expect(store.ack.map((r) => r.store)).toEqual(configurations);
    for (const row of store.ack) expect(row.latency.count).toBe(row.publishes);
    expect(readFileSync(join(outDir, "latest.md"), "utf8")).toMatch(/## Store/);
    // The bridge: every path delivered everything (or the scenario says why it was skipped: no nats-server).
    const bridge = results.bridge!;
    if (bridge.skipped === undefined) {
      expect(bridge.throughput.map((r) => r.path)).toEqual(["xpcbus", "nats", "bridged"]);
      for (const row of bridge.throughput) expect(row.delivered, row.path).toBe(row.messages);
      expect(Object.keys(bridge.throughput[2]!.serversCpuMs)).toEqual(["A", "nats-server", "B"]);
      expect(bridge.latency.map((r) => r.path)).toEqual(["xpcbus", "nats", "bridged"]);
      for (const row of bridge.latency) expect(row.missing, row.path).toBe(0);
      expect(bridge.addedP50Us).toBeDefined();
      expect(readFileSync(join(outDir, "latest.md"), "utf8")).toMatch(/## Bridge/);
    }
    if (process.platform === "linux") expect(results.notify!.postCost.map((r) => r.watchers)).toEqual([1, 10, 100, 1000]);

    const files = readdirSync(outDir);
    const json = files.find((f) => f.endsWith(".json"))!;
    const parsed = JSON.parse(readFileSync(join(outDir, json), "utf8")) as { machine: { cores: number }; delivery: unknown };
    expect(parsed.machine.cores).toBeGreaterThan(0);
    expect(parsed.delivery).toBeDefined();
    expect(readFileSync(join(outDir, "latest.md"), "utf8")).toMatch(/## Update delivery/);
    const svg = readFileSync(join(outDir, "latest.svg"), "utf8");
    expect(svg).toMatch(/^<svg /);
    // One mark per row the log-log chart can place (a row that used under 1 µs
    // of CPU per update rounds to 0 and has no place), one legend mark per mode.
    const charted = delivery.rows.filter((r) => r.cpuUsPerUpdate > 0 && r.latency.p50Us > 0);
    expect(svg.match(/<circle [^>]*><title>/g)?.length ?? 0).toBe(charted.length);
    expect(svg.match(/<circle [^>]*\/>/g)?.length ?? 0).toBe(new Set(charted.map((r) => r.mode)).size);
    expect(existsSync(join(outDir, json.replace(".json", ".md")))).toBe(true);
  }, 240_000);
});
