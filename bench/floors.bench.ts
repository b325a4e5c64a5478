// Floors, measured in the same run: what no broker on this machine can beat.
// The Node floor is a raw Node <-> Node Unix-socket ping-pong; the C floor is
// the same in C (built now, when a C compiler is present).

import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { newHistogram, summarise, type LatencySummary } from "./support/histogram.js";
import { clientScript, DIST, scratchDir, spawnNode } from "./support/processes.js";

export interface FloorsResult {
  scenario: "floors";
  node: { latency: LatencySummary; cpuMs: number };
  c: { latency: LatencySummary } | { skipped: string };
}

export async function run(options: { messages: number; payloadBytes: number; intervalMs: number }): Promise<FloorsResult> {
  const dir = scratchDir();
  try {
    const socket = join(dir.path, "floor.sock");
    const echo = spawnNode(clientScript("floor-echo"), [socket]);
    await echo.line("ready");
    const pinger = spawnNode(clientScript("floor-pinger"), [socket, String(options.messages), String(options.payloadBytes), String(options.intervalMs)]);
    const node = await pinger.result<{ latency: LatencySummary; cpuMs: number }>();
    await echo.stop();

    const source = join(DIST, "..", "bench", "floors", "pingpong.c");
    const binary = join(dir.path, "pingpong");
    const cc = spawnSync("cc", ["-O2", "-o", binary, source]);
    let c: FloorsResult["c"];
    if (cc.error !== undefined || cc.status !== 0) {
      c = { skipped: `no working C compiler (${cc.error?.message ?? cc.stderr.toString().trim()})` };
    } else {
      const out = spawnSync(binary, [String(options.messages), String(options.payloadBytes), String(options.intervalMs * 1000)], { maxBuffer: 64 << 20 });
      const histogram = newHistogram();
      for (const line of out.stdout.toString().split("\n")) if (line !== "") histogram.recordValue(Math.max(1, Number(line)));
      c = { latency: summarise(histogram) };
    }
    return { scenario: "floors", node, c };
  } finally {
    dir.remove();
  }
}
