// Vitest for `npm test`. Vitest's default is one worker fewer than the cores:
// a single worker on a 2-core machine, so every file waited for the one
// before it (about 135 s). Most files spend their time waiting on the
// processes they start (daemons, clients, the CLI), not on the CPU, so one
// worker per core halves that. One more than the cores measured about the
// same on 2 cores, with the heavy files (churn, 100 MB through a slow
// consumer, the notify stress) competing harder with their own children and
// the timing-sensitive ones (a slow consumer's slowdown ratio, an idle
// watcher's CPU ticks): not worth it. The pool stays vitest's default, so a
// `--pool` given on the command line (test:sanitize runs in threads) decides.
import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    maxWorkers: Math.max(2, availableParallelism()),
  },
});
