// Who the NATS bridge is to the broker: an in-process connection with an
// identity of its own ("bridge"), which the policy names with
// `"match": { "bridge": true }` and grants rights like any other peer's
// (docs/SECURITY.md). Nothing arrives from the network into a subject the
// policy does not let the bridge publish to.

import { BRIDGE_METHOD, type PolicyRule } from "../core/policy.js";
import type { PeerIdentity } from "../core/peer-link.js";
import type { BridgeConfig } from "./bridge-types.js";

export const BRIDGE_IDENTITY: Readonly<PeerIdentity> = Object.freeze({
  pid: process.pid,
  uid: null,
  gid: null,
  exe: null,
  exeVerified: false,
  method: BRIDGE_METHOD,
});

/**
 * Without --policy: the bridge may publish where its imports land and
 * subscribe where its exports come from, no more; the owner's rule is the
 * default policy's. A --policy file decides for itself.
 */
export function bridgePolicyRule(config: BridgeConfig): PolicyRule {
  const landing = config.import.map((entry) => {
    const tokens = entry.subject.split(".").slice(entry.stripTokens);
    return `${entry.localPrefix}${tokens.join(".")}`;
  });
  return {
    name: "bridge (from the bridge file)",
    match: { bridge: true },
    connect: "allow",
    publish: landing,
    subscribe: config.export.map((entry) => entry.subject),
    request: [...landing, ...config.export.map((entry) => entry.subject)],
  };
}
