// The wire protocol, shared by the SDK and the broker: limits, subjects,
// message types, framing and payload encodings.
export * from "./limits.js";
export * from "./subject.js";
export * from "./messages.js";
export { encodeFrame, decodeFrameBody, FrameDecoder, isWellTypedPub, type FrameFault } from "./frame-codec.js";
export { TurnWriter, RESERVE_MAX_BYTES, runBeforeNextFlush, type CorkableStream } from "./turn-writer.js";
export { pubFrameBytes, writePubFrame } from "./flat-cbor.js";
export { encodePayload, decodePayload, type Payload, type JsonValue, type EncodedPayload } from "./payload.js";
export * from "./notify-name.js";
export * from "./errors.js";
export * from "./broker-message-parser.js";
