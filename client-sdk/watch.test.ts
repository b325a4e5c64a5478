// Watch registration against the real daemon: a post that lands after the
// broker answered `watch` and before the client's notify token took its
// baseline must still wake the watch (PROTOCOL.md 9.9.5 steps 4 and 7), for a
// first watch and for the re-registration after a reconnect.
//
// The window is made deterministic without mocks: right after the `watch` op
// is written, the watcher's JS thread blocks in spawnSync while another
// process waits (through `status`) until the broker has handled that op, and
// then posts. The `ok` is read only after the post, as with a busy client.
import { spawnSync } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "./connect.js";
import type { Client } from "./client.js";
import { cleanup, SDK, startBroker, type BrokerProcess } from "../daemon/test-support/harness.js";

const linux = process.platform === "linux";
afterEach(cleanup);

const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

/** Frames the broker has read from `client` so far, the `status` op asking included. */
async function framesIn(client: Client): Promise<number> {
  return (await client.status()).peers.find((p) => p.id === client.peerId)!.msgsIn;
}

/**
 * Blocks this thread while another process waits until the broker has read
 * `frames` frames from peer `peer`, then posts `name` (with `state`) or
 * publishes to `subject`. Returns the publish's seq (0 for a post).
 */
function postFromAnotherProcess(socket: string, peer: number, frames: number, what: { name: string; state: bigint } | { subject: string }): number {
  const code = `
import { connect } from ${JSON.stringify(SDK)};
const c = await connect({ socket: ${JSON.stringify(socket)}, name: "race-poster" });
const deadline = Date.now() + 10_000;
for (;;) {
  const watcher = (await c.status()).peers.find((p) => p.id === ${peer});
  if (watcher !== undefined && watcher.msgsIn >= ${frames}) break;
  if (Date.now() > deadline) throw new Error("the broker never read the watcher's watch op");
  await new Promise((r) => setTimeout(r, 5));
}
let seq = 0;
${"name" in what ? `await c.post(${JSON.stringify(what.name)}, ${what.state}n);` : `seq = (await c.publish(${JSON.stringify(what.subject)}, "in the window")).seq;`}
await c.close();
process.stdout.write(String(seq));
`;
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", code], { encoding: "utf8", timeout: 20_000 });
  if (child.status !== 0) throw new Error(`poster failed (${child.status ?? child.signal}):\n${child.stderr}`);
  return Number(child.stdout);
}

/** The states of a watch's wake-ups, in order, with a wait for one that matches. */
class Wakes {
  readonly states: bigint[] = [];
  #waiters: Array<{ test: (state: bigint) => boolean; resolve: () => void }> = [];

  readonly record = (event: { state: bigint }): void => {
    this.states.push(event.state);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.test(event.state)) return true;
      w.resolve();
      return false;
    });
  };

  waitFor(test: (state: bigint) => boolean): Promise<void> {
    if (this.states.some(test)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching wake-up; states seen: ${this.states.join(", ")}`)), 10_000);
      this.#waiters.push({
        test,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }
}

/** Resolves after the writes gathered this turn have been made, and before any reply can be read. */
const turnEnded = (): Promise<void> => new Promise((resolve) => process.nextTick(resolve));

describe.skipIf(!linux)("a post between the broker's answer to watch and the client's token", () => {
  let broker: BrokerProcess;

  async function watcher(): Promise<Client> {
    const c = await connect({ socket: broker.socket, name: "race-watcher" });
    clients.push(c);
    return c;
  }

  it("wakes a new watchName() with the posted state", async () => {
    broker = await startBroker();
    const c = await watcher();
    const frames = (await framesIn(c)) + 1;
    const wakes = new Wakes();
    const pending = c.watchName("race.fresh", { callback: wakes.record });
    // The watch op is written at the end of this turn (before any I/O is
    // read); then this thread is busy until the post is made.
    await turnEnded();
    postFromAnotherProcess(broker.socket, c.peerId, frames, { name: "race.fresh", state: 7n });
    await pending;
    // A later post tells "the missed post was delivered" from "nothing came yet".
    await c.post("race.fresh", 8n);
    await wakes.waitFor((s) => s === 8n);
    expect(wakes.states[0]).toBe(7n);
  });

  it("wakes a new watch(subject) with the seq of the publish", async () => {
    broker = await startBroker();
    const c = await watcher();
    const frames = (await framesIn(c)) + 1;
    const wakes = new Wakes();
    const pending = c.watch("race.subject", { callback: wakes.record });
    await turnEnded();
    const seq = postFromAnotherProcess(broker.socket, c.peerId, frames, { subject: "race.subject" });
    await pending;
    const { seq: later } = await c.publish("race.subject", "after");
    await wakes.waitFor((s) => s === BigInt(later!));
    expect(wakes.states[0]).toBe(BigInt(seq));
  });

  it("wakes a watch re-registered after a broker restart", async () => {
    broker = await startBroker();
    const socket = broker.socket;
    const c = await watcher();
    const wakes = new Wakes();
    await c.watchName("race.rewatch", { callback: wakes.record });
    await broker.kill("SIGKILL");
    const reconnected = new Promise<void>((resolve) => {
      // On reconnect the client has written hello and then the watch op (2
      // frames, nothing else is re-sent); its `ok` has not been read yet.
      c.once("reconnected", () => {
        // After the turn's write of those two frames.
        process.nextTick(() => {
          postFromAnotherProcess(socket, c.peerId, 2, { name: "race.rewatch", state: 5n });
          resolve();
        });
      });
    });
    broker = await startBroker({ socket });
    await reconnected;
    // Answered after the watch's ok, so the client has registered the name again.
    await c.notifyState("race.rewatch");
    await c.post("race.rewatch", 6n);
    await wakes.waitFor((s) => s === 6n);
    expect(wakes.states[0]).toBe(5n);
  });
});
