// Churn: 10,000 connect/subscribe/disconnect cycles, and client processes
// killed with -9. Afterwards the broker's open fds, peers, subscriptions and
// heap are back at their starting level, within the tolerance stated here.
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../client-sdk/index.js";
import type { Client } from "../client-sdk/index.js";
import { cleanup, eventually, spawnClient, startBroker } from "./test-support/harness.js";
import { RawPeer } from "./test-support/raw-peer.js";

afterEach(cleanup);

/** fds may differ by a few (an accept in flight, the status connection itself). */
const FD_TOLERANCE = 5;
/** Heap after a collection (the daemon runs with --expose-gc): a few MiB of caches and JIT, far below what 10,000 leaked peers would hold. */
const HEAP_TOLERANCE = 8 * 1024 * 1024;

async function settled(observer: Client, baseline: { fds: number; heapUsed: number }): Promise<void> {
  let last: unknown;
  await eventually(
    async () => {
      const status = await observer.status();
      const proc = status.process!;
      const ok =
        status.peers.length === 1 &&
        status.subjects.length === 0 &&
        proc["fds"]! <= baseline.fds + FD_TOLERANCE &&
        proc["heapUsed"]! <= baseline.heapUsed + HEAP_TOLERANCE;
      last = { peers: status.peers.length, subjects: status.subjects.length, ...proc, baseline };
      return ok ? true : undefined;
    },
    10_000,
    "the broker to return to its starting fds, peers, subscriptions and heap",
  ).catch((error: Error) => {
    throw new Error(`${error.message}; last: ${JSON.stringify(last)}`);
  });
}

describe("churn", () => {
  it("10,000 connect/subscribe/disconnect cycles leave nothing behind", async () => {
    // --expose-gc: status then reports the heap after a collection.
    const broker = await startBroker({ args: ["--log-level", "info"], nodeArgs: ["--expose-gc"] });
    const observer = await connect({ socket: broker.socket, name: "observer", reconnect: false });
    const start = (await observer.status()).process!;
    const baseline = { fds: start["fds"]!, heapUsed: start["heapUsed"]! };
    const cycles = 10_000;
    const parallel = 50;
    for (let done = 0; done < cycles; done += parallel) {
      await Promise.all(
        Array.from({ length: parallel }, async (_, k) => {
          const peer = await RawPeer.connect(broker.socket);
          peer.send({ op: "hello", v: 1, id: 0 });
          peer.send({ op: "sub", sid: 1, subject: `churn.${done + k}.>`, id: 1 });
          await peer.next((m) => m["op"] === "ok" && m["id"] === 1);
          peer.socket.destroy();
        }),
      );
    }
    await settled(observer, baseline);
    await observer.close();
  }, 180_000);

  it("client processes killed with -9 leave nothing behind", async () => {
    const broker = await startBroker({ nodeArgs: ["--expose-gc"] });
    const observer = await connect({ socket: broker.socket, name: "observer", reconnect: false });
    const start = (await observer.status()).process!;
    const clients = Array.from({ length: 30 }, (_, i) =>
      spawnClient(broker.socket, `const c = await connect({ socket }); await c.subscribe("k.${i}"); await c.watch("k.${i}"); emit("ready");`),
    );
    await Promise.all(clients.map((c) => c.event("ready")));
    expect((await observer.status()).peers.length).toBe(31);
    await Promise.all(clients.map((c) => c.kill("SIGKILL")));
    await settled(observer, { fds: start["fds"]!, heapUsed: start["heapUsed"]! });
    await observer.close();
  }, 60_000);
});
