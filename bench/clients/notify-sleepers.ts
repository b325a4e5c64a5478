// Benchmark helper: `count` native waiters (one thread each) asleep on one
// slot of a notify table, as that many watching processes would be.
import { loadNative } from "../../native/index.js";

const [table, slotText, countText] = process.argv.slice(2) as [string, string, string];
const native = loadNative();
const reader = new native.NotifyTableReader!(table);
const waiters = Array.from({ length: Number(countText) }, () => {
  const waiter = new native.NotifyWaiter!(reader, () => {}, { perSlot: true });
  waiter.setSlots([Number(slotText)]);
  return waiter;
});
process.stdout.write("ready\n");
process.stdin.resume();
process.stdin.on("end", () => {
  for (const w of waiters) w.close();
  process.exit(0);
});
