// How a responder whose handler failed tells the requester at once, with no
// change to the broker: the reply is an ordinary publish to the inbox whose
// JSON payload is one reserved key (docs/PROTOCOL.md, Appendix A, "Responder
// errors"). NATS services do the same with a header; this protocol has no
// headers, and `p`/`enc` are all the broker forwards of a reply (section 9.5).
// answerRequest() is how respond() runs a handler and always answers.

import { CallbackError, NoRespondersError, ResponderError, XpcbusError } from "./errors.js";
import type { Message } from "./subscription.js";

/** The one key of an error reply: `{"$xpcbusError": {"code": "responder_error", "message": …}}`, `enc: "json"`. */
export const RESPONDER_ERROR_KEY = "$xpcbusError";

/**
 * Characters of the handler's message sent to the requester. It is a reason
 * for a person, not data; the bound keeps the reply far below any
 * maxPayloadBytes a broker would be run with, so the error itself always fits.
 */
export const MAX_RESPONDER_ERROR_MESSAGE_CHARS = 1024;

/** The reply a responder sends when its handler threw `thrown`. */
export function responderErrorReply(thrown: unknown): Record<string, unknown> {
  let message = thrown instanceof Error ? thrown.message : String(thrown);
  if (message.length > MAX_RESPONDER_ERROR_MESSAGE_CHARS) message = `${message.slice(0, MAX_RESPONDER_ERROR_MESSAGE_CHARS)}…`;
  return { [RESPONDER_ERROR_KEY]: { code: "responder_error", message } };
}

/**
 * The error a reply stands for, or undefined for an ordinary reply: a
 * ResponderError, or a NoRespondersError when a relay (the NATS bridge) says
 * nobody answers on its side (code "no_responders"), so the requester sees
 * what it would see locally.
 */
export function responderErrorOf(reply: Message): ResponderError | NoRespondersError | undefined {
  if (reply.encoding !== "json") return undefined;
  const data = reply.data;
  if (data === null || typeof data !== "object" || Array.isArray(data) || data instanceof Uint8Array) return undefined;
  const keys = Object.keys(data);
  if (keys.length !== 1 || keys[0] !== RESPONDER_ERROR_KEY) return undefined;
  const body = (data as Record<string, unknown>)[RESPONDER_ERROR_KEY];
  if (body === null || typeof body !== "object") return undefined;
  const message = (body as Record<string, unknown>)["message"];
  if ((body as Record<string, unknown>)["code"] === "no_responders") return new NoRespondersError(typeof message === "string" ? message : "no responders");
  return new ResponderError(typeof message === "string" ? message : "the responder's handler failed");
}

/**
 * Runs a responder's handler for `request` and sends its reply, or an error
 * reply when it fails (reported through `report` as well). Never rejects.
 */
export async function answerRequest(
  subject: string,
  request: Message,
  handler: (request: Message) => unknown,
  report: (error: CallbackError) => void,
): Promise<void> {
  let result: unknown;
  try {
    result = await handler(request);
  } catch (error) {
    await answerFailed(subject, request, error, report);
    return;
  }
  try {
    await request.respond(result);
  } catch (error) {
    // A value that cannot be sent is the handler's failure too; a lost or
    // closed connection is not, and the broker tells the requester
    // (responder_gone) or its timeout does.
    if (error instanceof XpcbusError && (error.code === "invalid_argument" || error.code === "payload_too_large")) {
      await answerFailed(subject, request, error, report);
    }
  }
}

async function answerFailed(subject: string, request: Message, error: unknown, report: (error: CallbackError) => void): Promise<void> {
  report(new CallbackError("responder", subject, error));
  try {
    await request.respond(responderErrorReply(error));
  } catch {
    // Disconnected or closed meanwhile: the requester hears responder_gone, or times out.
  }
}
