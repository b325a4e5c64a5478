// Pub/sub, retained values and request/reply. The broker's logic runs over
// the memory transport (the SDK and the real frame codec in this process, no
// socket); a few smoke tests run it between separate client processes
// through the real daemon.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client, Message } from "../client-sdk/index.js";
import { cleanup, spawnClient, startBroker, type BrokerProcess, type ClientProcess } from "./test-support/harness.js";
import { startMemoryBroker, type MemoryBroker } from "./test-support/memory-broker.js";

let broker: BrokerProcess;
let memory: MemoryBroker;
beforeAll(async () => {
  [broker, memory] = await Promise.all([startBroker(), startMemoryBroker()]);
});
afterAll(async () => {
  await memory.stop();
  cleanup();
});

/** Resolves when `test` holds for what `seen` collected; checked at every push (no sleeping). */
function collector<T>(): { seen: T[]; push(item: T): void; until(test: (seen: T[]) => boolean): Promise<void> } {
  const seen: T[] = [];
  const waiters = new Set<() => void>();
  return {
    seen,
    push(item) {
      seen.push(item);
      for (const w of [...waiters]) w();
    },
    until(test) {
      if (test(seen)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out; seen: ${JSON.stringify(seen)}`)), 5_000);
        const w = (): void => {
          if (!test(seen)) return;
          clearTimeout(timer);
          waiters.delete(w);
          resolve();
        };
        waiters.add(w);
      });
    },
  };
}

/** Subscribes `client` to each pattern; every message goes to one collector as { pattern, message }. */
async function listen(client: Client, patterns: string[], options: { replay?: boolean } = {}) {
  const got = collector<{ pattern: string; m: Message }>();
  for (const pattern of patterns) await client.subscribe(pattern, { ...options, callback: (m) => got.push({ pattern, m }) });
  return got;
}

/** A subscriber process that reports every message as {"event":"msg", pattern, subject, data, seq}. */
function subscriber(patterns: string[], options: Record<string, unknown> = {}): ClientProcess {
  return spawnClient(
    broker.socket,
    `
const client = await connect({ socket, name: "sub" });
for (const pattern of ${JSON.stringify(patterns)}) {
  const sub = await client.subscribe(pattern, ${JSON.stringify(options)});
  (async () => { for await (const m of sub) emit("msg", { pattern, subject: m.subject, data: toJson(m.data), encoding: m.encoding, seq: m.seq }); })();
}
emit("ready");
await new Promise(() => {}); // keep listening until killed
`,
  );
}

/** A publisher process: each stdin line is a JSON [subject, data, options]; it answers {"event":"published", seq}. */
function publisher(): ClientProcess {
  return spawnClient(
    broker.socket,
    `
const client = await connect({ socket, name: "pub" });
emit("ready");
for await (const line of commands) {
  const [subject, data, options] = JSON.parse(line);
  try {
    const ack = await client.publish(subject, data, options ?? {});
    emit("published", { subject, seq: ack.seq });
  } catch (error) { emit("failed", { subject, code: error.code }); }
}
`,
  );
}

describe("publish and subscribe between processes", () => {
  it("delivers to exact and wildcard subscribers in other processes, and not to non-matching ones", async () => {
    const exact = subscriber(["home.kitchen.temp"]);
    const star = subscriber(["home.*.temp"]);
    const rest = subscriber(["home.>"]);
    const other = subscriber(["office.>", "home"]);
    await Promise.all([exact, star, rest, other].map((c) => c.event("ready")));
    const pub = publisher();
    await pub.event("ready");

    pub.send(JSON.stringify(["home.kitchen.temp", { celsius: 21.5 }]));
    pub.send(JSON.stringify(["home.hall.light.on", "yes"]));
    pub.send(JSON.stringify(["done.marker", 1]));
    await pub.event("published", (e) => e["subject"] === "done.marker");

    const got = await exact.event("msg");
    expect(got).toMatchObject({ subject: "home.kitchen.temp", data: { celsius: 21.5 }, encoding: "json" });
    expect(got["seq"]).toEqual(pub.events("published")[0]?.["seq"]);
    await star.event("msg", (e) => e["subject"] === "home.kitchen.temp");
    await rest.event("msg", (e) => e["subject"] === "home.hall.light.on" && e["data"] === "yes");
    await rest.event("msg", (e) => e["subject"] === "home.kitchen.temp");

    // Deliveries to one peer keep publish order, so once each subscriber has
    // its own last marker, anything wrongly routed to it would already be there.
    pub.send(JSON.stringify(["home.hall.temp", "hall"]));
    pub.send(JSON.stringify(["home", "root"]));
    pub.send(JSON.stringify(["home.kitchen.temp", "end"]));
    await exact.event("msg", (e) => e["data"] === "end");
    await star.event("msg", (e) => e["data"] === "end");
    await other.event("msg", (e) => e["data"] === "root");
    expect(exact.events("msg").map((e) => e["data"])).toEqual([{ celsius: 21.5 }, "end"]);
    expect(star.events("msg").map((e) => e["subject"])).toEqual(["home.kitchen.temp", "home.hall.temp", "home.kitchen.temp"]);
    expect(other.events("msg").map((e) => e["subject"])).toEqual(["home"]);
  });

});

describe("publish and subscribe (memory transport)", () => {
  it("hands a peer with overlapping subscriptions the message once per subscription, from one delivery", async () => {
    const client = await memory.client();
    const got = await listen(client, ["x.y", "x.*", "x.>"]);
    const pub = await memory.client();
    await pub.publish("x.y", "one");
    for (const pattern of ["x.y", "x.*", "x.>"]) await got.until((seen) => seen.some((e) => e.pattern === pattern));
    await pub.publish("x.y", "two");
    await got.until((seen) => seen.some((e) => e.pattern === "x.>" && e.m.data === "two"));
    expect(got.seen.filter((e) => e.m.data === "one")).toHaveLength(3);
  });

  it("keeps bytes, text and JSON payloads as they were sent", async () => {
    const client = await memory.client();
    const got = await listen(client, ["enc.*"]);
    const pub = await memory.client();
    await pub.publish("enc.bytes", Buffer.from([0, 1, 254, 255]));
    await pub.publish("enc.text", "héllo\nworld");
    await pub.publish("enc.json", { list: [1, "two", null], nested: { ok: true } });
    await got.until((seen) => seen.length === 3);
    expect(got.seen.map(({ m }) => ({ subject: m.subject, encoding: m.encoding, isBytes: m.data instanceof Uint8Array, data: m.data instanceof Uint8Array ? Buffer.from(m.data) : m.data }))).toEqual([
      { subject: "enc.bytes", encoding: "bytes", isBytes: true, data: Buffer.from([0, 1, 254, 255]) },
      { subject: "enc.text", encoding: "text", isBytes: false, data: "héllo\nworld" },
      { subject: "enc.json", encoding: "json", isBytes: false, data: { list: [1, "two", null], nested: { ok: true } } },
    ]);
  });

  it("stops delivering after unsubscribe", async () => {
    const client = await memory.client();
    const kept = collector<unknown>();
    const gone = collector<unknown>();
    await client.subscribe("u.*", { callback: (m) => kept.push(m.data) });
    const goneSub = await client.subscribe("u.*", { callback: (m) => gone.push(m.data) });
    const pub = await memory.client();
    await pub.publish("u.a", 1);
    await gone.until((seen) => seen.includes(1));
    await goneSub.unsubscribe();
    await pub.publish("u.a", 2);
    await kept.until((seen) => seen.includes(2));
    expect(gone.seen).toEqual([1]);
  });
});

describe("retained values", () => {
  it("serves get with value and seq, a clear none, replay to new subscribers, and clearing", async () => {
    const pub = await memory.client();
    await pub.publish("state.battery", { level: 80 }, { retain: true });
    await pub.publish("state.wifi", "up", { retain: true });
    const { seq: batterySeq } = await pub.publish("state.battery", { level: 79 }, { retain: true });
    await pub.publish("state.noise", "not retained");

    const reader = await memory.client();
    const gets = [];
    for (const s of ["state.battery", "state.noise", "state.none"]) {
      const r = await reader.get(s);
      gets.push({ subject: s, found: r.found, data: r.found ? r.data : undefined, seq: r.seq });
    }
    expect(gets).toEqual([
      { subject: "state.battery", found: true, data: { level: 79 }, seq: batterySeq },
      { subject: "state.noise", found: false, data: undefined, seq: 0 },
      { subject: "state.none", found: false, data: undefined, seq: 0 },
    ]);
    const replayed = await listen(reader, ["state.*"], { replay: true });
    await replayed.until((seen) => seen.length === 2);
    expect(replayed.seen.map(({ m }) => [m.subject, m.data])).toEqual(
      expect.arrayContaining([
        ["state.battery", { level: 79 }],
        ["state.wifi", "up"],
      ]),
    );

    await pub.publish("state.wifi", "", { retain: true });
    const after = await memory.client();
    expect((await after.get("state.wifi")).found).toBe(false);
  });
});

describe("retained replay order", () => {
  it("replays in the order the values were retained, across subjects and publishers (the seq order)", async () => {
    const [one, two] = await Promise.all([memory.greeted(), memory.greeted()]);
    let id = 0;
    const retain = async (peer: typeof one, subject: string, text: string): Promise<number> => {
      const mine = ++id;
      peer.send({ op: "pub", subject, p: Buffer.from(text), enc: "text", retain: true, id: mine });
      return Number((await peer.next((m) => m["id"] === mine))["seq"]);
    };
    await retain(one, "order.a.x", "a1");
    let by = 0;
    for (let i = 1; i <= 5; i++) by = await retain(two, "order.b.y", `b${i}`);
    // One counter for every subject: a.x retained after b.y numbers above it.
    const ax = await retain(one, "order.a.x", "a2");
    const cz = await retain(two, "order.c.z", "c1");
    expect(ax).toBeGreaterThan(by);
    one.send({ op: "get", subject: "order.b.y", id: ++id });
    await one.next((m) => m["id"] === id);

    const reader = await memory.greeted();
    reader.send({ op: "sub", sid: 9, subject: "order.>", replay: true, id: 1 });
    await reader.next((m) => m["op"] === "ok" && m["id"] === 1);
    const replayed = reader.received.filter((m) => m["op"] === "msg");
    expect(replayed.map((m) => [m["subject"], Buffer.from(m["p"] as Uint8Array).toString(), Number(m["seq"]), m["sid"]])).toEqual([
      ["order.b.y", "b5", by, 9],
      ["order.a.x", "a2", ax, 9],
      ["order.c.z", "c1", cz, 9],
    ]);
    for (const peer of [one, two, reader]) peer.destroy();
  });
});

describe("request and reply", () => {
  function responder(name: string, subject: string, queue?: string): ClientProcess {
    return spawnClient(
      broker.socket,
      `
const client = await connect({ socket, name: ${JSON.stringify(name)} });
await client.respond(${JSON.stringify(subject)}, (req) => { emit("served", { data: req.data }); return { by: ${JSON.stringify(name)}, echo: req.data }; }${queue ? `, { queue: ${JSON.stringify(queue)} }` : ""});
emit("ready");
`,
    );
  }

  function requester(script: string): ClientProcess {
    return spawnClient(
      broker.socket,
      `
const client = await connect({ socket, name: "requester" });
const ask = async (subject, data, timeoutMs) => {
  const started = Date.now();
  try { const r = await client.request(subject, data, { timeoutMs }); emit("reply", { subject, data: r.data, ms: Date.now() - started }); }
  catch (error) { emit("failed", { subject, code: error.code, name: error.name, ms: Date.now() - started }); }
};
${script}
await client.close();
`,
    );
  }

  it("routes a request to a responder in another process and the reply back", async () => {
    const r = responder("alpha", "math.echo");
    await r.event("ready");
    const q = requester(`await ask("math.echo", { n: 7 });`);
    await q.exited;
    expect(q.events("reply")[0]).toMatchObject({ subject: "math.echo", data: { by: "alpha", echo: { n: 7 } } });
    expect(r.events("served")).toEqual([{ event: "served", data: { n: 7 } }]);
  });

});

describe("request and reply (memory transport)", () => {
  it("round-robins requests across a queue group", async () => {
    for (const name of ["w1", "w2", "w3"]) {
      const member = await memory.client({ name });
      await member.respond("work.do", (req) => ({ by: name, echo: req.data }), { queue: "workers" });
    }
    const asker = await memory.client({ name: "requester" });
    const by: string[] = [];
    for (let i = 0; i < 9; i++) by.push(((await asker.request("work.do", i)).data as { by: string }).by);
    expect(by).toHaveLength(9);
    for (const name of ["w1", "w2", "w3"]) expect(by.filter((b) => b === name)).toHaveLength(3);
  });

  it("fails at once with no_responders, and with timeout when nobody answers in time", async () => {
    const silent = await memory.client();
    const got = collector<unknown>();
    await silent.subscribe("slow.op", { queue: "q", callback: (m) => got.push(m.data) });
    const asker = await memory.client({ name: "requester" });
    const fail = async (subject: string, timeoutMs: number) => {
      const started = Date.now();
      const error = (await asker.request(subject, 1, { timeoutMs }).then(
        () => ({}),
        (e: unknown) => e,
      )) as { code?: string; name?: string };
      return { code: error.code, name: error.name, ms: Date.now() - started };
    };
    const none = await fail("nobody.home", 5000);
    const slow = await fail("slow.op", 300);
    expect(none).toMatchObject({ code: "no_responders", name: "NoRespondersError" });
    expect(none.ms).toBeLessThan(1000);
    expect(slow).toMatchObject({ code: "timeout", name: "RequestTimeoutError" });
    expect(slow.ms).toBeGreaterThanOrEqual(290);
    await got.until((seen) => seen.length === 1);
  });
});

describe("noEcho (hello.noEcho)", () => {
  it("never delivers a noEcho client its own publishes, plain or as the chosen member of its queue group, and delivers them to everyone else", async () => {
    const echoless = await memory.client({ noEcho: true });
    const other = await memory.client();
    const own: string[] = [];
    const others: string[] = [];
    const ownGroup: string[] = [];
    const otherGroup: string[] = [];
    await echoless.subscribe("echo.x", { callback: (m) => void own.push(String(m.data)) });
    await other.subscribe("echo.x", { callback: (m) => void others.push(String(m.data)) });
    await echoless.subscribe("echo.x", { queue: "g", callback: (m) => void ownGroup.push(String(m.data)) });
    await other.subscribe("echo.x", { queue: "g", callback: (m) => void otherGroup.push(String(m.data)) });
    for (let i = 0; i < 4; i++) await echoless.publish("echo.x", `e${i}`);
    await other.publish("echo.x", "o");
    await echoless.flush();
    await other.flush();
    expect(own).toEqual(["o"]);
    expect(others).toEqual(["e0", "e1", "e2", "e3", "o"]);
    // The group's share of the noEcho client's publishes all went to the other member.
    expect(otherGroup.filter((d) => d.startsWith("e"))).toEqual(["e0", "e1", "e2", "e3"]);
    expect(ownGroup.filter((d) => d.startsWith("e"))).toEqual([]);
    await echoless.close();
    await other.close();
  });
});

describe("publish with an encoding (bytes relayed as they are)", () => {
  it("tags bytes with the given encoding, which receivers decode, and refuses it with anything but bytes", async () => {
    const c = await memory.client();
    const got: unknown[] = [];
    await c.subscribe("relay.x", { callback: (m) => void got.push([m.encoding, m.data]) });
    await c.publish("relay.x", Buffer.from('{"a": 1}'), { encoding: "json" });
    await c.publish("relay.x", Buffer.from("hi"), { encoding: "text" });
    await c.flush();
    expect(got).toEqual([
      ["json", { a: 1 }],
      ["text", "hi"],
    ]);
    await expect(c.publish("relay.x", "text", { encoding: "json" })).rejects.toMatchObject({ code: "invalid_argument" });
    await c.close();
  });
});
