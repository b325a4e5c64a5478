// The broker core in this process behind a MemoryTransport: the fast way to
// test the broker's logic (pub/sub, bad ops, rights, request/reply) with the
// real SDK and real frames, but no socket and no process. Real daemons
// (harness.ts) stay for what needs them.
import pino from "pino";
import { connect, type Client, type ConnectOptions } from "../../client-sdk/index.js";
import { Broker, MemoryTransport, type BrokerOptions, type MemoryTransportOptions, type PeerIdentity } from "../index.js";
import { RawPeer } from "./raw-peer.js";

export interface MemoryBroker {
  readonly broker: Broker;
  readonly transport: MemoryTransport;
  /** An SDK client over the memory transport (no reconnect unless asked); closed by stop(). */
  client(options?: Partial<ConnectOptions> & { identity?: PeerIdentity }): Promise<Client>;
  /** A raw peer (connected, no hello yet). */
  raw(): Promise<RawPeer>;
  /** A raw peer that has completed hello. */
  greeted(): Promise<RawPeer>;
  /** Closes the clients, says bye to every peer, and waits until every connection has ended. */
  stop(): Promise<void>;
}

export async function startMemoryBroker(options: BrokerOptions & { transport?: MemoryTransportOptions } = {}): Promise<MemoryBroker> {
  const { transport: transportOptions, ...brokerOptions } = options;
  const broker = new Broker({ logger: pino({ level: "silent" }), ...brokerOptions });
  const transport = new MemoryTransport(transportOptions);
  await transport.start(broker);
  const clients: Client[] = [];
  const peers: RawPeer[] = [];
  return {
    broker,
    transport,
    async client({ identity, ...rest } = {}) {
      const c = await connect({ transport: identity === undefined ? transport : transport.as(identity), reconnect: false, name: "memory", ...rest });
      clients.push(c);
      return c;
    },
    async raw() {
      const peer = await RawPeer.connect(transport);
      peers.push(peer);
      return peer;
    },
    async greeted() {
      const peer = await RawPeer.greeted(transport);
      peers.push(peer);
      return peer;
    },
    async stop() {
      await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
      for (const peer of peers.splice(0)) peer.destroy();
      broker.close();
      await transport.drained();
      transport.close();
    },
  };
}
