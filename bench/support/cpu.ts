// CPU time of any process by pid, read from outside (/proc), the same way for
// the broker, every peer and every client: the sum over the process's threads
// of /proc/<pid>/task/<tid>/schedstat's first field, the nanoseconds each has
// run as the scheduler accounts them. /proc/<pid>/stat's utime + stime count
// 10 ms ticks (USER_HZ), too coarse for a short window, an idle process or a
// cost per message; /proc/<pid>/schedstat alone is the main thread only.
//
// Two limits, both the caller's to respect:
// - A process that has exited cannot be read (its /proc entry is gone once it
//   is reaped): read it before letting it exit. The bench clients wait for
//   their stdin to close before they exit, for this.
// - A thread counts while it lives: one that exits between two readings drops
//   out of the second. Node's threads (V8 platform, libuv pool), Redis's,
//   NATS's (Go runtime threads are kept) and Mosquitto's live as long as the
//   process, so a delta over a window is exact for every process measured here.

import { readdirSync, readFileSync } from "node:fs";

/** CPU time of `pid`, all threads, in nanoseconds. Throws if the process is gone. */
export function cpuNs(pid: number): number {
  const dir = `/proc/${pid}/task`;
  let tids: string[];
  try {
    tids = readdirSync(dir);
  } catch (error) {
    throw new Error(`cannot read the CPU time of process ${pid}: it has exited (read it before it exits)`, { cause: error });
  }
  let total = 0;
  for (const tid of tids) {
    try {
      total += Number(readFileSync(`${dir}/${tid}/schedstat`, "utf8").split(" ", 1)[0]);
    } catch {
      // The thread exited between the listing and the read: its time is gone with it.
    }
  }
  return total;
}

/** CPU time of `pid`, all threads, in milliseconds (nanosecond resolution; see `roundMs` for reports). */
export function cpuMs(pid: number): number {
  return cpuNs(pid) / 1e6;
}

/** The summed CPU time of `pids`, in milliseconds. */
export function cpuMsOf(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
}

/** A CPU figure in ms rounded to the microsecond, for results and reports. */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
