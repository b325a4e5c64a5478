// The brokers compared in the same run: xpcbus and, when their binaries are
// present, Redis pub/sub, Mosquitto (MQTT) and NATS, each started by the
// harness on 127.0.0.1 (xpcbus on its Unix socket), stopped by pid, and
// driven with its standard Node client. A missing binary is a printed skip,
// never a zero.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { startBroker } from "./processes.js";

export type SystemName = "xpcbus" | "redis" | "mosquitto" | "nats";
export const SYSTEMS: SystemName[] = ["xpcbus", "redis", "mosquitto", "nats"];

const BINARIES: Record<Exclude<SystemName, "xpcbus">, string> = {
  redis: "redis-server",
  mosquitto: "mosquitto",
  nats: "nats-server",
};

export interface RunningSystem {
  name: SystemName;
  /** Where its clients connect: a socket path (xpcbus) or a 127.0.0.1 port. */
  address: string;
  pid: number;
  stop(): Promise<void>;
}

/** Why `name` cannot run here, or undefined. */
export function unavailable(name: SystemName): string | undefined {
  if (name === "xpcbus") return undefined;
  const binary = BINARIES[name];
  const found = spawnSync("sh", ["-c", `command -v ${binary}`]).status === 0;
  return found ? undefined : `${binary} is not installed (Debian: apt-get install ${name === "redis" ? "redis-server" : binary})`;
}

/** The systems that can run here, in order; the others are added to `skipped` with why, and reported. */
export function availableSystems(
  scenario: string,
  systems: readonly SystemName[],
  skipped: Array<{ system: SystemName; reason: string }>,
  progress?: (line: string) => void,
): SystemName[] {
  return systems.filter((system) => {
    const reason = unavailable(system);
    if (reason === undefined) return true;
    skipped.push({ system, reason });
    progress?.(`${scenario}: ${system} skipped: ${reason}`);
    return false;
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, name: string): Promise<void> {
  const { createConnection } = await import("node:net");
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited at start (code ${child.exitCode})`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ port, host: "127.0.0.1" });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${name} did not open port ${port}`);
}

export interface SystemOptions {
  /**
   * More `xpcbus daemon` options, e.g. `["--store", "memory"]` (xpcbus only:
   * the peers' settings are fixed here). Default none: the product's defaults,
   * so the SQLite store at `<socket>.store.db` beside the socket.
   */
  brokerArgs?: readonly string[];
}

export async function startSystem(name: SystemName, dir: string, options: SystemOptions = {}): Promise<RunningSystem> {
  if (name === "xpcbus") {
    const socket = join(dir, `xpcbus-${Date.now()}.sock`);
    const broker = await startBroker(socket, options.brokerArgs);
    return { name, address: socket, pid: broker.pid, stop: broker.stop };
  }
  if (options.brokerArgs !== undefined && options.brokerArgs.length > 0) throw new Error(`brokerArgs are for xpcbus only, not ${name}`);
  const port = await freePort();
  let args: string[];
  if (name === "redis") {
    args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no"];
  } else if (name === "mosquitto") {
    const conf = join(dir, `mosquitto-${port}.conf`);
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n`);
    args = ["-c", conf];
  } else {
    args = ["-a", "127.0.0.1", "-p", String(port)];
  }
  const child = spawn(BINARIES[name], args, { stdio: "ignore" });
  await waitForPort(port, child, name);
  return {
    name,
    address: String(port),
    pid: child.pid!,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
    },
  };
}

/** A publisher for `name` at `address`: publish(bytes) resolves once the bytes are handed to the client library. */
export interface Publisher {
  publish(subject: string, payload: Buffer): Promise<void>;
  close(): Promise<void>;
}

export interface PublisherOptions {
  /** Every publish retained (xpcbus only: Redis pub/sub and NATS core have no retained value). Default false. */
  retain?: boolean;
}

export async function openPublisher(name: SystemName, address: string, options: PublisherOptions = {}): Promise<Publisher> {
  if (name === "xpcbus") {
    const { connect } = await import("../../client-sdk/index.js");
    const client = await connect({ socket: address, name: "bench-publisher", reconnect: false });
    const publishOptions = options.retain === true ? { ack: false, retain: true } : { ack: false };
    return {
      publish: async (subject, payload) => void (await client.publish(subject, payload, publishOptions)),
      close: () => client.close(),
    };
  }
  if (options.retain === true) throw new Error(`retained publishes are for xpcbus only, not ${name}`);
  if (name === "redis") {
    const { createClient } = await import("redis");
    const client = createClient({ socket: { host: "127.0.0.1", port: Number(address) } });
    await client.connect();
    return {
      publish: async (subject, payload) => void (await client.publish(subject, payload)),
      close: async () => void (await client.quit()),
    };
  }
  if (name === "mosquitto") {
    const mqtt = await import("mqtt");
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${address}`);
    return {
      publish: async (subject, payload) => void (await client.publishAsync(subject.replace(/\./g, "/"), payload, { qos: 0 })),
      close: async () => void (await client.endAsync()),
    };
  }
  const nats = await import("nats");
  const nc = await nats.connect({ servers: `127.0.0.1:${address}` });
  return {
    publish: async (subject, payload) => nc.publish(subject, payload),
    close: async () => void (await nc.drain()),
  };
}

/** A subscriber for `name` at `address`: `onPayload` gets each message's bytes; resolves once the subscription is in place. */
export interface Subscriber {
  close(): Promise<void>;
}

export async function openSubscriber(name: SystemName, address: string, subject: string, onPayload: (payload: Uint8Array) => void): Promise<Subscriber> {
  if (name === "xpcbus") {
    const { connect } = await import("../../client-sdk/index.js");
    const client = await connect({ socket: address, name: "bench-client-subscriber", reconnect: false });
    await client.subscribe(subject, { callback: (m) => onPayload(m.raw) });
    return { close: () => client.close() };
  }
  if (name === "redis") {
    const { createClient } = await import("redis");
    const client = createClient({ socket: { host: "127.0.0.1", port: Number(address) } });
    await client.connect();
    await client.subscribe(subject, (message: Buffer) => onPayload(message), true);
    return { close: async () => void (await client.quit()) };
  }
  if (name === "mosquitto") {
    const mqtt = await import("mqtt");
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${address}`);
    client.on("message", (_topic, message) => onPayload(message));
    await client.subscribeAsync(subject.replace(/\./g, "/"), { qos: 0 });
    return { close: async () => void (await client.endAsync()) };
  }
  const nats = await import("nats");
  const nc = await nats.connect({ servers: `127.0.0.1:${address}` });
  nc.subscribe(subject, { callback: (_err, m) => onPayload(m.data) });
  await nc.flush();
  return { close: async () => void (await nc.close()) };
}
