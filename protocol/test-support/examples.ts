// Wire values that tests of either side can hand around as they are.
import type { BrokerLimits } from "../messages.js";

/** A `welcome.limits` as a default broker announces it (PROTOCOL.md §6.1, §11). */
export const EXAMPLE_LIMITS: BrokerLimits = {
  maxFrameBytes: 1064960,
  maxPayloadBytes: 1048576,
  maxSubjectBytes: 256,
  maxSubjectTokens: 16,
  maxSubscriptionsPerPeer: 10000,
  maxPendingRequestsPerPeer: 1024,
  maxRequestTimeoutMs: 600000,
  maxWatchesPerPeer: 1024,
};
