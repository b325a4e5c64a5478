// Notification names (docs/PROTOCOL.md, "Notifications"): the rules shared by
// the broker, the SDK and the CLI. A subject's name is `<prefix>.<subject>`.

/** Longest notification name, in bytes. notifyd accepts longer; 512 bounds the broker's tables. */
export const MAX_NOTIFY_NAME_BYTES = 512;

/** Service name a broker uses, and its default notification prefix. */
export const DEFAULT_SERVICE_NAME = "io.xpcbus.broker";

// Printable ASCII without space: what every notify(3) user can type and log.
const NAME = /^[\x21-\x7e]+$/;

export function notifyNameProblem(name: unknown): string | undefined {
  if (typeof name !== "string") return "a notification name must be a string";
  if (name.length === 0) return "a notification name must not be empty";
  if (name.length > MAX_NOTIFY_NAME_BYTES) return `a notification name is at most ${MAX_NOTIFY_NAME_BYTES} bytes (got ${name.length})`;
  if (!NAME.test(name)) return `notification name "${name}" has a character outside printable ASCII (or a space)`;
  return undefined;
}

/**
 * Why a peer with `uid` may not post `name`, or undefined. Darwin reserves
 * `com.apple.` and `self.` (process-local), and `user.uid.<n>.` for uid n;
 * the broker reserves its own prefix, where only publishes post.
 */
export function postingProblem(name: string, uid: number | null, brokerPrefix: string): string | undefined {
  const problem = notifyNameProblem(name);
  if (problem !== undefined) return problem;
  if (name.startsWith("com.apple.")) return `"com.apple." names are Apple's; xpcbus does not post them`;
  if (name.startsWith("self.")) return `"self." names are process-local in notify(3) and cannot be posted through a broker`;
  if (name === brokerPrefix || name.startsWith(`${brokerPrefix}.`)) {
    return `names under "${brokerPrefix}." are posted by the broker on publish; publish to the subject instead`;
  }
  const userScoped = /^user\.uid\.(\d+)\./.exec(name);
  if (userScoped !== null && (uid === null || Number(userScoped[1]) !== uid)) {
    return `"user.uid.${userScoped[1]}." names may be posted only by uid ${userScoped[1]}`;
  }
  return undefined;
}

/** The notification name of a subject under `prefix`. */
export function subjectNotifyName(prefix: string, subject: string): string {
  return `${prefix}.${subject}`;
}

/**
 * FNV-1a, 32 bits, of the name's bytes; stored in a notify table slot so a
 * reader can confirm the slot still belongs to its name. Never 0 (0 = free).
 */
export function notifyNameHash(name: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(name, "latin1")) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash === 0 ? 1 : hash;
}
