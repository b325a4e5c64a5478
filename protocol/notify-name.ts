// Notification names (docs/PROTOCOL.md, "Notifications"): the rules shared by
// the broker, the SDK and the CLI. A subject's name is `<prefix>.<subject>`.

/**
 * Longest notification name, in bytes. notifyd's MIG interface carries a name
 * as `c_string[*:512]`: 511 bytes and the NUL. A longer name reaches notifyd
 * cut to 511 bytes, i.e. as another name, so the broker refuses it on every
 * platform rather than post or watch a name other than the one asked for.
 */
export const MAX_NOTIFY_NAME_BYTES = 511;

/** Darwin's per-user namespace: `user.uid.<uid>` and the names under it (Libnotify's access check). */
const USER_UID_PREFIX = "user.uid.";

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
  if (name.startsWith(USER_UID_PREFIX) && (uid === null || !ownsUserUidName(name, uid))) {
    return `"${userUidScope(name)}" names may be posted only by the user they name`;
  }
  return undefined;
}

/**
 * Whether `uid` owns `name` in notifyd's per-user namespace: `name` is not
 * under `user.uid.` at all, or is `user.uid.<uid>` or under
 * `user.uid.<uid>.`, spelled exactly as notifyd spells the uid (decimal, no
 * leading zeros). notifyd lets any other uid but root neither register nor
 * set the state of such a name (Libnotify, `_internal_check_access`).
 */
export function ownsUserUidName(name: string, uid: number): boolean {
  if (!name.startsWith(USER_UID_PREFIX)) return true;
  const own = `${USER_UID_PREFIX}${uid}`;
  return name === own || name.startsWith(`${own}.`);
}

/**
 * Why a broker running as `brokerUid` cannot serve `name` through notifyd, or
 * undefined. Root may use every name; any other uid only its own
 * `user.uid.<uid>` names besides the unscoped ones, as notifyd refuses the
 * rest (NOTIFY_STATUS_NOT_AUTHORIZED) when the broker registers for them.
 */
export function brokerUidProblem(name: string, brokerUid: number): string | undefined {
  if (brokerUid === 0 || ownsUserUidName(name, brokerUid)) return undefined;
  return `"${userUidScope(name)}" names belong to another user: this broker runs as uid ${brokerUid}, and notifyd lets it use only "user.uid.${brokerUid}" names among "user.uid." ones`;
}

/** `user.uid.<n>` of a name under `user.uid.`, for messages. */
function userUidScope(name: string): string {
  const end = name.indexOf(".", USER_UID_PREFIX.length);
  return end < 0 ? name : name.slice(0, end);
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
