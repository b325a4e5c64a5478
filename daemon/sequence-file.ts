// The durable half of sequence numbers (see core/sequences.ts). A small file
// holds the highest value the broker may have issued; a restarted broker
// starts above it. The wall clock, in microseconds, is a second floor, so
// that losing the file (a tmpfs runtime dir after reboot) still never
// reissues a value, as long as the clock has not gone back.

import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import type { Logger } from "pino";
import type { SequenceFloor } from "./core/sequences.js";

export function fileSequenceFloor(path: string, log: Logger, now: () => number = Date.now): SequenceFloor {
  let stored = 0;
  try {
    const text = readFileSync(path, "utf8").trim();
    const value = Number(text);
    if (Number.isSafeInteger(value) && value >= 0) stored = value;
    else log.warn({ file: path }, "sequence file is unreadable; starting from the clock");
  } catch {
    // No file yet: the clock alone is the floor.
  }
  const floor = Math.max(stored, now() * 1000);
  return {
    floor,
    reserve(upTo: number): void {
      const tmp = `${path}.tmp`;
      const fd = openSync(tmp, "w", 0o600);
      try {
        writeSync(fd, `${upTo}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
    },
  };
}
