// Pub/sub, retained values and request/reply between separate client
// processes, through the real daemon.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanup, spawnClient, startBroker, type BrokerProcess, type ClientProcess } from "./test-support/harness.js";
import { RawPeer } from "./test-support/raw-peer.js";

let broker: BrokerProcess;
beforeAll(async () => {
  broker = await startBroker();
});
afterAll(cleanup);

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

  it("hands a peer with overlapping subscriptions the message once per subscription, from one delivery", async () => {
    const client = subscriber(["x.y", "x.*", "x.>"]);
    await client.event("ready");
    const pub = publisher();
    await pub.event("ready");
    pub.send(JSON.stringify(["x.y", "one"]));
    await pub.event("published");
    for (const pattern of ["x.y", "x.*", "x.>"]) await client.event("msg", (e) => e["pattern"] === pattern);
    pub.send(JSON.stringify(["x.y", "two"]));
    await client.event("msg", (e) => e["pattern"] === "x.>" && e["data"] === "two");
    expect(client.events("msg").filter((e) => e["data"] === "one")).toHaveLength(3);
  });

  it("keeps bytes, text and JSON payloads as they were sent", async () => {
    const client = spawnClient(
      broker.socket,
      `
const client = await connect({ socket });
const sub = await client.subscribe("enc.*");
emit("ready");
let n = 0;
for await (const m of sub) {
  emit("msg", { subject: m.subject, encoding: m.encoding, isBytes: m.data instanceof Uint8Array, data: toJson(m.data) });
  if (++n === 3) break;
}
await client.close();
`,
    );
    await client.event("ready");
    const pub = spawnClient(
      broker.socket,
      `
const client = await connect({ socket });
await client.publish("enc.bytes", Buffer.from([0, 1, 254, 255]));
await client.publish("enc.text", "héllo\\nworld");
await client.publish("enc.json", { list: [1, "two", null], nested: { ok: true } });
await client.close();
emit("done");
`,
    );
    await pub.event("done");
    await client.exited;
    const msgs = client.events("msg");
    expect(msgs).toEqual([
      { event: "msg", subject: "enc.bytes", encoding: "bytes", isBytes: true, data: { base64: Buffer.from([0, 1, 254, 255]).toString("base64") } },
      { event: "msg", subject: "enc.text", encoding: "text", isBytes: false, data: "héllo\nworld" },
      { event: "msg", subject: "enc.json", encoding: "json", isBytes: false, data: { list: [1, "two", null], nested: { ok: true } } },
    ]);
  });

  it("stops delivering after unsubscribe", async () => {
    const client = spawnClient(
      broker.socket,
      `
const client = await connect({ socket });
const kept = await client.subscribe("u.*", { callback: (m) => emit("kept", { data: m.data }) });
const gone = await client.subscribe("u.*", { callback: (m) => emit("gone", { data: m.data }) });
emit("ready");
for await (const line of commands) {
  if (line === "unsub") { await gone.unsubscribe(); emit("unsubscribed"); }
}
`,
    );
    await client.event("ready");
    const pub = publisher();
    await pub.event("ready");
    pub.send(JSON.stringify(["u.a", 1]));
    await client.event("gone", (e) => e["data"] === 1);
    client.send("unsub");
    await client.event("unsubscribed");
    pub.send(JSON.stringify(["u.a", 2]));
    await client.event("kept", (e) => e["data"] === 2);
    expect(client.events("gone").map((e) => e["data"])).toEqual([1]);
  });
});

describe("retained values", () => {
  it("serves get with value and seq, a clear none, replay to new subscribers, and clearing", async () => {
    const pub = publisher();
    await pub.event("ready");
    pub.send(JSON.stringify(["state.battery", { level: 80 }, { retain: true }]));
    pub.send(JSON.stringify(["state.wifi", "up", { retain: true }]));
    pub.send(JSON.stringify(["state.battery", { level: 79 }, { retain: true }]));
    pub.send(JSON.stringify(["state.noise", "not retained"]));
    await pub.event("published", (e) => e["subject"] === "state.noise");
    const batterySeq = pub.events("published").filter((e) => e["subject"] === "state.battery")[1]?.["seq"];

    const reader = spawnClient(
      broker.socket,
      `
const client = await connect({ socket });
for (const s of ["state.battery", "state.noise", "state.none"]) {
  const r = await client.get(s);
  emit("get", { subject: s, found: r.found, data: r.found ? r.data : undefined, seq: r.seq });
}
const sub = await client.subscribe("state.*", { replay: true });
emit("subscribed");
let n = 0;
for await (const m of sub) { emit("replayed", { subject: m.subject, data: m.data, seq: m.seq }); if (++n === 2) break; }
await client.close();
`,
    );
    await reader.exited;
    expect(reader.events("get")).toEqual([
      { event: "get", subject: "state.battery", found: true, data: { level: 79 }, seq: batterySeq },
      { event: "get", subject: "state.noise", found: false, seq: 0 },
      { event: "get", subject: "state.none", found: false, seq: 0 },
    ]);
    const replayed = reader.events("replayed").map((e) => [e["subject"], e["data"]]);
    expect(replayed).toEqual(
      expect.arrayContaining([
        ["state.battery", { level: 79 }],
        ["state.wifi", "up"],
      ]),
    );

    pub.send(JSON.stringify(["state.wifi", "", { retain: true }]));
    await pub.event("published", (e) => e["subject"] === "state.wifi" && pub.events("published").filter((x) => x["subject"] === "state.wifi").length === 2);
    const after = spawnClient(broker.socket, `const c = await connect({ socket }); const r = await c.get("state.wifi"); emit("get", { found: r.found }); await c.close();`);
    expect((await after.event("get"))["found"]).toBe(false);
  });
});

describe("retained replay order", () => {
  it("replays in the order the values were retained, across subjects and publishers, not by seq", async () => {
    const [one, two] = await Promise.all([RawPeer.greeted(broker.socket), RawPeer.greeted(broker.socket)]);
    let id = 0;
    const retain = async (peer: RawPeer, subject: string, text: string): Promise<number> => {
      const mine = ++id;
      peer.send({ op: "pub", subject, p: Buffer.from(text), enc: "text", retain: true, id: mine });
      return Number((await peer.next((m) => m["id"] === mine))["seq"]);
    };
    await retain(one, "order.a.x", "a1");
    let by = 0;
    for (let i = 1; i <= 5; i++) by = await retain(two, "order.b.y", `b${i}`);
    // a.x's counter is its own: its next number is below b.y's, though it comes later.
    const ax = await retain(one, "order.a.x", "a2");
    const cz = await retain(two, "order.c.z", "c1");
    expect(ax).toBeLessThan(by);
    one.send({ op: "get", subject: "order.b.y", id: ++id });
    await one.next((m) => m["id"] === id);

    const reader = await RawPeer.greeted(broker.socket);
    reader.send({ op: "sub", sid: 9, subject: "order.>", replay: true, id: 1 });
    await reader.next((m) => m["op"] === "ok" && m["id"] === 1);
    const replayed = reader.received.filter((m) => m["op"] === "msg");
    expect(replayed.map((m) => [m["subject"], Buffer.from(m["p"] as Uint8Array).toString(), Number(m["seq"]), m["sid"]])).toEqual([
      ["order.b.y", "b5", by, 9],
      ["order.a.x", "a2", ax, 9],
      ["order.c.z", "c1", cz, 9],
    ]);
    for (const peer of [one, two, reader]) peer.socket.destroy();
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

  it("round-robins requests across a queue group", async () => {
    const members = ["w1", "w2", "w3"].map((n) => responder(n, "work.do", "workers"));
    await Promise.all(members.map((m) => m.event("ready")));
    const q = requester(`for (let i = 0; i < 9; i++) await ask("work.do", i);`);
    await q.exited;
    const by = q.events("reply").map((e) => (e["data"] as { by: string }).by);
    expect(by).toHaveLength(9);
    for (const name of ["w1", "w2", "w3"]) expect(by.filter((b) => b === name)).toHaveLength(3);
  });

  it("fails at once with no_responders, and with timeout when nobody answers in time", async () => {
    const silent = spawnClient(
      broker.socket,
      `const c = await connect({ socket }); await c.subscribe("slow.op", { queue: "q", callback: () => emit("got") }); emit("ready");`,
    );
    await silent.event("ready");
    const q = requester(`await ask("nobody.home", 1, 5000); await ask("slow.op", 1, 300);`);
    await q.exited;
    const [none, slow] = q.events("failed");
    expect(none).toMatchObject({ code: "no_responders", name: "NoRespondersError" });
    expect(none!["ms"] as number).toBeLessThan(1000);
    expect(slow).toMatchObject({ code: "timeout", name: "RequestTimeoutError" });
    expect(slow!["ms"] as number).toBeGreaterThanOrEqual(290);
    await silent.event("got");
  });
});
