// Reading a bridge file: which local subjects go to a NATS cluster and which
// NATS subjects come back. JSON, checked whole before use, and every problem
// is reported with its place (not only the first), so one `xpcbus bridge
// check` shows everything to fix. The result type is bridge-types.ts.
//
// The file:
//
//   {
//     "version": 1,
//     "nats": {
//       "servers": ["nats://127.0.0.1:4222"],
//       "name": "xpcbus-myhost",
//       "credentials": "path/user.creds",
//       "nkeySeed": "path/seed.nk",
//       "token": "…",
//       "user": "…", "pass": "…",
//       "tls": { "ca": "path/ca.pem", "cert": "path/cert.pem", "key": "path/key.pem" }
//     },
//     "export": [ { "subject": "app.>", "prefix": "fleet.myhost." } ],
//     "import": [ { "subject": "fleet.*.app.>", "stripTokens": 2, "localPrefix": "remote." } ],
//     "bufferBytes": 8388608,
//     "reconnect": { "initialDelayMs": 250, "maxDelayMs": 10000 }
//   }
//
// - version: must be 1.
// - nats.servers: one or more of nats://host[:port], tls://host[:port], or a
//   bare host:port, which is read as nats://host:port (nats.js takes that form
//   too; it is stored with the scheme, so logs and status show one form). The
//   port defaults to 4222. No user or password in the URL (use nats.user and
//   nats.pass, so the secret has one place), no path, query or fragment.
// - nats.name: the connection's name on the NATS side; default
//   "xpcbus-<hostname>".
// - Authentication: at most one of credentials (a .creds file), nkeySeed (a
//   file holding an nkey seed), token, user (+ pass); pass needs user.
// - nats.tls: any of ca, cert, key (cert and key together); a tls:// server
//   without a "tls" object uses the system's CAs.
// - Every path (credentials, nkeySeed, tls.*) is relative to the bridge file's
//   directory, and must name a file that can be read now: a missing or
//   unreadable one is a problem at check time, not a failure at connect.
// - export[i].subject: a local subject pattern (docs/PROTOCOL.md §7,
//   wildcards allowed), not under "_INBOX." (request inboxes are private to a
//   connection). Local messages matching it are published to NATS as
//   prefix + subject.
// - export[i].prefix: default "fleet.<hostname>." with the hostname made a
//   token (dots become "-", other characters outside A-Z a-z 0-9 _ - :
//   become "_"), so machines do not collide; "" for none; otherwise tokens
//   ending with ".". prefix + subject must be a valid subject (256 bytes, 16
//   tokens): this is checked on the pattern, the only thing known here; a
//   concrete subject under a `*` or `>` can be longer than its pattern.
// - import[i].subject: a NATS subject pattern, with the token rules of
//   xpcbus (NATS allows more characters, but only what can be published
//   locally is accepted).
// - import[i].stripTokens (default 0): tokens taken off the front before
//   publishing locally; fewer than the pattern's leading tokens that are a
//   literal or `*` (stripping never reaches into a `>`, and leaves one token
//   of the pattern at least).
// - import[i].localPrefix (default ""): put in front of what is left; tokens
//   ending with ".". The local pattern (localPrefix + what stripTokens
//   leaves of the pattern) must be a valid subject pattern not under "_INBOX.".
// - bufferBytes: a positive integer (default 8 MiB).
// - reconnect.initialDelayMs, reconnect.maxDelayMs: positive integers,
//   initialDelayMs ≤ maxDelayMs (defaults 250 and 10,000).
// - Unknown keys, anywhere, are problems.

import { closeSync, openSync, readFileSync, statSync } from "node:fs";
import { hostname as osHostname } from "node:os";
import { dirname, resolve } from "node:path";
import { INBOX_PREFIX, InvalidArgumentError, MAX_SUBJECT_BYTES, MAX_SUBJECT_TOKENS, subjectMatches, subjectProblem } from "../../protocol/index.js";
import type { BridgeConfig, BridgeExport, BridgeImport, BridgeNatsOptions } from "./bridge-types.js";

/** The only version of the file format so far. */
export const BRIDGE_FILE_VERSION = 1;
/** Exported messages held while NATS is away: enough for a few seconds of a busy host, small beside the broker's own history. */
export const DEFAULT_BUFFER_BYTES = 8 * 1024 * 1024;
/** Reconnect backoff, from a blip (a quarter second) up to a restart of the cluster (ten seconds between tries). */
export const DEFAULT_RECONNECT_INITIAL_DELAY_MS = 250;
export const DEFAULT_RECONNECT_MAX_DELAY_MS = 10_000;
/** nats.js's default port, used when a server names none. */
export const DEFAULT_NATS_PORT = 4222;
/** The longest delay setTimeout can wait (a 32-bit signed count of ms): a longer backoff would fire at once. */
const MAX_DELAY_MS = 2 ** 31 - 1;

const TOP_KEYS = ["version", "nats", "export", "import", "bufferBytes", "reconnect"];
const NATS_KEYS = ["servers", "name", "credentials", "nkeySeed", "token", "user", "pass", "tls"];
const TLS_KEYS = ["ca", "cert", "key"];
const EXPORT_KEYS = ["subject", "prefix"];
const IMPORT_KEYS = ["subject", "stripTokens", "localPrefix"];
const RECONNECT_KEYS = ["initialDelayMs", "maxDelayMs"];

/** One thing wrong in a bridge file: where (`nats.servers[1]`, `export[0].prefix`, `file`) and why. */
export interface BridgeProblem {
  place: string;
  why: string;
}

/**
 * A bridge file with problems. The message lists them all, one per line
 * (`bridge <file>: <n> problem(s)` then `  <place>: <why>`); `problems`
 * has them for a program. An InvalidArgumentError, so the CLI exits 2.
 */
export class BridgeFileError extends InvalidArgumentError {
  constructor(
    readonly source: string,
    readonly problems: readonly BridgeProblem[],
  ) {
    super([`bridge ${source}: ${problems.length} problem(s)`, ...problems.map((p) => `  ${p.place}: ${p.why}`)].join("\n"));
    this.name = "BridgeFileError";
  }
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Collects problems while the whole file is checked, so none hides another. */
class Problems {
  readonly list: BridgeProblem[] = [];
  add(place: string, why: string): void {
    this.list.push({ place, why });
  }
  /** Each key of `object` not in `known` is a problem. */
  unknownKeys(object: Json, known: readonly string[], at: string): void {
    for (const key of Object.keys(object)) {
      if (!known.includes(key)) this.add(join(at, key), `unknown key; known: ${known.join(", ")}`);
    }
  }
}

function join(at: string, key: string): string {
  return at === "" ? key : `${at}.${key}`;
}

/**
 * `hostname` as one subject token: dots become "-" (so "myhost.local" stays
 * one token and readable), anything else outside A-Z a-z 0-9 _ - : becomes
 * "_" (docs/PROTOCOL.md §7).
 */
export function hostnameToken(hostname: string): string {
  const token = hostname.replace(/\./g, "-").replace(/[^A-Za-z0-9_:-]/g, "_");
  return token === "" ? "unknown-host" : token;
}

/** Why `prefix` is not "" or valid tokens ending with ".", or undefined. */
function prefixProblem(prefix: string): string | undefined {
  if (prefix === "") return undefined;
  if (!prefix.endsWith(".")) return `must be "" or end with "." (got "${prefix}")`;
  const problem = subjectProblem(prefix.slice(0, -1), false);
  return problem === undefined ? undefined : `"${prefix}" is not tokens ending with ".": ${problem}`;
}

/**
 * A server as nats.js takes it, with its scheme: nats:// or tls://, or a bare
 * host:port read as nats://. Returns the URL or why not.
 */
function serverUrl(raw: string): { url: string } | { why: string } {
  if (raw === "") return { why: "must be a non-empty string" };
  const hasScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(raw);
  let url: URL;
  try {
    url = new URL(hasScheme ? raw : `nats://${raw}`);
  } catch {
    return { why: `"${raw}" is not a URL (nats://host:port, tls://host:port or host:port)` };
  }
  if (url.protocol !== "nats:" && url.protocol !== "tls:") return { why: `"${raw}": the scheme must be nats:// or tls:// (got ${url.protocol}//)` };
  if (url.hostname === "") return { why: `"${raw}" names no host` };
  if (url.username !== "" || url.password !== "") return { why: `"${raw}": give credentials in nats.user/nats.pass (or token, credentials, nkeySeed), not in the URL` };
  if ((url.pathname !== "" && url.pathname !== "/") || url.search !== "" || url.hash !== "") return { why: `"${raw}": a server is scheme://host:port, with no path, query or fragment` };
  // `new URL` has checked the port is 0-65535 and drops a scheme's default; 0 is no port.
  if (url.port === "0") return { why: `"${raw}": port 0 is not a server's port` };
  return { url: `${url.protocol}//${url.host}${url.port === "" ? `:${DEFAULT_NATS_PORT}` : ""}` };
}

/** `value` if it is a non-empty string; else a problem at `place`. */
function nonEmptyString(value: unknown, place: string, problems: Problems): string | undefined {
  if (typeof value === "string" && value !== "") return value;
  problems.add(place, "must be a non-empty string");
  return undefined;
}

/** A path from the file, resolved against the file's directory, that must be a readable file now. */
function readablePath(value: unknown, place: string, baseDir: string, problems: Problems): string | undefined {
  const given = nonEmptyString(value, place, problems);
  if (given === undefined) return undefined;
  const path = resolve(baseDir, given);
  try {
    if (!statSync(path).isFile()) {
      problems.add(place, `${path} is not a file`);
      return path;
    }
    // Opening is the test that counts: it is what the connect will do, with the same (effective) ids, which access() does not use.
    closeSync(openSync(path, "r"));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "does not exist" : code === "EACCES" || code === "EPERM" ? "cannot be read (permission denied)" : `cannot be read: ${(error as Error).message}`;
    problems.add(place, `${path} ${why}`);
  }
  return path;
}

function positiveInteger(value: unknown, place: string, max: number, problems: Problems): number | undefined {
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 1 && value <= max) return value;
  problems.add(place, `must be an integer from 1 to ${max}${typeof value === "number" || typeof value === "string" ? ` (got ${JSON.stringify(value)})` : ""}`);
  return undefined;
}

function parseNats(raw: unknown, baseDir: string, host: string, problems: Problems): BridgeNatsOptions {
  const nats: BridgeNatsOptions = { servers: [], name: `xpcbus-${host}` };
  if (raw === undefined) {
    problems.add("nats", "missing: give at least nats.servers");
    return nats;
  }
  if (!isObject(raw)) {
    problems.add("nats", "must be an object");
    return nats;
  }
  problems.unknownKeys(raw, NATS_KEYS, "nats");
  const servers = raw["servers"];
  if (!Array.isArray(servers) || servers.length === 0) {
    problems.add("nats.servers", "must be a non-empty array of server URLs (nats://host:port, tls://host:port or host:port)");
  } else {
    servers.forEach((server, i) => {
      const place = `nats.servers[${i}]`;
      if (typeof server !== "string") return problems.add(place, "must be a string (nats://host:port, tls://host:port or host:port)");
      const checked = serverUrl(server);
      if ("why" in checked) problems.add(place, checked.why);
      else nats.servers.push(checked.url);
    });
  }
  if (raw["name"] !== undefined) {
    const name = nonEmptyString(raw["name"], "nats.name", problems);
    if (name !== undefined) nats.name = name;
  }

  const methods = (["credentials", "nkeySeed", "token", "user"] as const).filter((key) => raw[key] !== undefined);
  if (methods.length > 1) problems.add("nats", `at most one way to authenticate: ${methods.join(", ")} are given`);
  if (raw["credentials"] !== undefined) nats.credentialsFile = readablePath(raw["credentials"], "nats.credentials", baseDir, problems);
  if (raw["nkeySeed"] !== undefined) nats.nkeySeedFile = readablePath(raw["nkeySeed"], "nats.nkeySeed", baseDir, problems);
  if (raw["token"] !== undefined) nats.token = nonEmptyString(raw["token"], "nats.token", problems);
  if (raw["user"] !== undefined) nats.user = nonEmptyString(raw["user"], "nats.user", problems);
  if (raw["pass"] !== undefined) {
    if (raw["user"] === undefined) problems.add("nats.pass", "needs nats.user");
    nats.pass = nonEmptyString(raw["pass"], "nats.pass", problems);
  }

  const tls = raw["tls"];
  if (tls !== undefined) {
    if (!isObject(tls)) {
      problems.add("nats.tls", "must be an object with ca, cert and/or key");
    } else {
      problems.unknownKeys(tls, TLS_KEYS, "nats.tls");
      const given = TLS_KEYS.filter((key) => tls[key] !== undefined);
      if (given.length === 0) problems.add("nats.tls", "is empty: give ca, cert and/or key, or leave tls out (a tls:// server uses the system's CAs)");
      if ((tls["cert"] === undefined) !== (tls["key"] === undefined)) problems.add("nats.tls", "cert and key go together (a client certificate needs its key)");
      const files: NonNullable<BridgeNatsOptions["tls"]> = {};
      if (tls["ca"] !== undefined) files.caFile = readablePath(tls["ca"], "nats.tls.ca", baseDir, problems);
      if (tls["cert"] !== undefined) files.certFile = readablePath(tls["cert"], "nats.tls.cert", baseDir, problems);
      if (tls["key"] !== undefined) files.keyFile = readablePath(tls["key"], "nats.tls.key", baseDir, problems);
      if (given.length > 0) nats.tls = files;
    }
  }
  return nats;
}

/** Each object of the array at `key` through `parse`, in order; a problem for anything else. */
function entries<T>(raw: unknown, key: string, problems: Problems, parse: (entry: Json, at: string) => T | undefined): T[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) {
    problems.add(key, "must be an array");
    return [];
  }
  const out: T[] = [];
  raw.forEach((entry, i) => {
    const at = `${key}[${i}]`;
    if (!isObject(entry)) return problems.add(at, "must be an object");
    const parsed = parse(entry, at);
    if (parsed !== undefined) out.push(parsed);
  });
  return out;
}

/** Why `pattern` may not be used on this side, or undefined. */
function patternProblem(pattern: string): string | undefined {
  const problem = subjectProblem(pattern, true);
  if (problem !== undefined) return problem;
  if (pattern.startsWith(INBOX_PREFIX)) return `"${pattern}" is under "${INBOX_PREFIX}", which is reserved for request inboxes`;
  return undefined;
}

/** What would be wrong with `joined` (a prefix and a pattern) as a subject, said in terms of its limits. */
function joinedProblem(joined: string): string | undefined {
  const problem = subjectProblem(joined, true);
  if (problem === undefined) return undefined;
  return `makes "${joined}", which is not a valid subject pattern (at most ${MAX_SUBJECT_BYTES} bytes and ${MAX_SUBJECT_TOKENS} tokens): ${problem}`;
}

function parseExport(entry: Json, at: string, host: string, problems: Problems): BridgeExport | undefined {
  problems.unknownKeys(entry, EXPORT_KEYS, at);
  const subject = entry["subject"];
  let subjectOk = false;
  if (typeof subject !== "string") problems.add(`${at}.subject`, "must be a string (a local subject pattern)");
  else {
    const problem = patternProblem(subject);
    if (problem !== undefined) problems.add(`${at}.subject`, problem);
    else subjectOk = true;
  }
  const given = entry["prefix"];
  let prefix = `fleet.${hostnameToken(host)}.`;
  let prefixOk = true;
  if (given !== undefined) {
    if (typeof given !== "string") {
      problems.add(`${at}.prefix`, 'must be a string ("" or tokens ending with ".")');
      prefixOk = false;
    } else {
      const problem = prefixProblem(given);
      if (problem !== undefined) problems.add(`${at}.prefix`, problem);
      prefix = given;
      prefixOk = problem === undefined;
    }
  }
  if (!subjectOk || !prefixOk) return undefined;
  // Checked on the pattern: a subject under `*` or `>` may be longer, which only the runtime can see.
  const problem = joinedProblem(prefix + (subject as string));
  if (problem !== undefined) {
    problems.add(`${at}.prefix`, `${given === undefined ? `the default prefix "${prefix}" (from the hostname)` : `"${prefix}"`} + "${subject as string}" ${problem}`);
    return undefined;
  }
  return { subject: subject as string, prefix };
}

/** How many leading tokens of `pattern` are a literal or `*` (the ones stripTokens may take). */
function strippableTokens(pattern: string): number {
  const tokens = pattern.split(".");
  const gt = tokens.indexOf(">");
  return gt === -1 ? tokens.length : gt;
}

function parseImport(entry: Json, at: string, problems: Problems): BridgeImport | undefined {
  problems.unknownKeys(entry, IMPORT_KEYS, at);
  const subject = entry["subject"];
  let subjectOk = false;
  if (typeof subject !== "string") problems.add(`${at}.subject`, "must be a string (a NATS subject pattern)");
  else {
    const problem = subjectProblem(subject, true);
    if (problem !== undefined) problems.add(`${at}.subject`, problem);
    else subjectOk = true;
  }
  let stripTokens = 0;
  let stripOk = true;
  const strip = entry["stripTokens"];
  if (strip !== undefined) {
    if (typeof strip !== "number" || !Number.isSafeInteger(strip) || strip < 0) {
      problems.add(`${at}.stripTokens`, `must be a non-negative integer (got ${JSON.stringify(strip)})`);
      stripOk = false;
    } else {
      stripTokens = strip;
      if (subjectOk) {
        const most = strippableTokens(subject as string) - 1;
        if (strip > most) {
          const why = most < 0 ? `"${subject as string}" starts with ">", so no token can be stripped` : `at most ${most} for "${subject as string}": at least one of its literal or "*" tokens must be left, and ">" never stripped into`;
          problems.add(`${at}.stripTokens`, `${why} (got ${strip})`);
          stripOk = false;
        }
      }
    }
  }
  let localPrefix = "";
  let prefixOk = true;
  const given = entry["localPrefix"];
  if (given !== undefined) {
    if (typeof given !== "string") {
      problems.add(`${at}.localPrefix`, 'must be a string ("" or tokens ending with ".")');
      prefixOk = false;
    } else {
      const problem = prefixProblem(given);
      if (problem !== undefined) problems.add(`${at}.localPrefix`, problem);
      localPrefix = given;
      prefixOk = problem === undefined;
    }
  }
  if (!subjectOk || !stripOk || !prefixOk) return undefined;
  const local = localPrefix + (subject as string).split(".").slice(stripTokens).join(".");
  // Where the local side is wrong, the place is what the user would change: the prefix if one is given, else the pattern.
  const place = given !== undefined && given !== "" ? `${at}.localPrefix` : stripTokens > 0 ? `${at}.stripTokens` : `${at}.subject`;
  const problem = joinedProblem(local);
  if (problem !== undefined) {
    problems.add(place, `the local side ${problem}`);
    return undefined;
  }
  if (local.startsWith(INBOX_PREFIX)) {
    problems.add(place, `the local side "${local}" is under "${INBOX_PREFIX}", which is reserved for request inboxes`);
    return undefined;
  }
  return { subject: subject as string, stripTokens, localPrefix };
}

function parseReconnect(raw: unknown, problems: Problems): BridgeConfig["reconnect"] {
  const reconnect = { initialDelayMs: DEFAULT_RECONNECT_INITIAL_DELAY_MS, maxDelayMs: DEFAULT_RECONNECT_MAX_DELAY_MS };
  if (raw === undefined) return reconnect;
  if (!isObject(raw)) {
    problems.add("reconnect", "must be an object with initialDelayMs and/or maxDelayMs");
    return reconnect;
  }
  problems.unknownKeys(raw, RECONNECT_KEYS, "reconnect");
  let ok = true;
  for (const key of RECONNECT_KEYS as ("initialDelayMs" | "maxDelayMs")[]) {
    if (raw[key] === undefined) continue;
    const value = positiveInteger(raw[key], `reconnect.${key}`, MAX_DELAY_MS, problems);
    if (value === undefined) ok = false;
    else reconnect[key] = value;
  }
  if (ok && reconnect.initialDelayMs > reconnect.maxDelayMs) {
    problems.add(
      raw["initialDelayMs"] !== undefined ? "reconnect.initialDelayMs" : "reconnect.maxDelayMs",
      `initialDelayMs (${reconnect.initialDelayMs}${raw["initialDelayMs"] === undefined ? ", the default" : ""}) must not exceed maxDelayMs (${reconnect.maxDelayMs}${raw["maxDelayMs"] === undefined ? ", the default" : ""})`,
    );
  }
  return reconnect;
}

/**
 * Where `text` stops being JSON: an offset. V8's messages give a position
 * for some errors only ("Unexpected token" quotes the text instead), so this
 * finds it by scanning; only called once JSON.parse has failed.
 */
function jsonErrorOffset(text: string): number {
  let i = 0;
  const space = () => {
    while (i < text.length && " \t\n\r".includes(text[i] as string)) i++;
  };
  const fail = (): never => {
    throw i;
  };
  const literal = (word: string) => {
    for (const c of word) {
      if (text[i] !== c) fail();
      i++;
    }
  };
  const string = () => {
    i++; // the opening quote
    for (;;) {
      if (i >= text.length) fail();
      const c = text.charCodeAt(i);
      if (c === 34) return void i++;
      if (c < 32) fail();
      if (c === 92) {
        i++;
        if (text[i] === "u") {
          if (!/^[0-9A-Fa-f]{4}$/.test(text.slice(i + 1, i + 5))) fail();
          i += 5;
        } else if (text[i] !== undefined && '"\\/bfnrt'.includes(text[i] as string)) i++;
        else fail();
      } else i++;
    }
  };
  const value = (): void => {
    space();
    const c = text[i];
    if (c === "{" || c === "[") {
      const close = c === "{" ? "}" : "]";
      i++;
      space();
      if (text[i] === close) return void i++;
      for (;;) {
        if (close === "}") {
          space();
          if (text[i] !== '"') fail();
          string();
          space();
          if (text[i] !== ":") fail();
          i++;
        }
        value();
        space();
        if (text[i] === ",") i++;
        else if (text[i] === close) return void i++;
        else fail();
      }
    }
    if (c === '"') return string();
    if (c === "t") return literal("true");
    if (c === "f") return literal("false");
    if (c === "n") return literal("null");
    const number = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i));
    if (number === null) fail();
    i += (number as RegExpExecArray)[0].length;
  };
  try {
    value();
    space();
    return i;
  } catch (offset) {
    return offset as number;
  }
}

/** JSON.parse's message on one line, with the line and column a person needs. */
function jsonMessage(error: Error, text: string): string {
  const at = /position (\d+)/.exec(error.message);
  const position = at === null ? jsonErrorOffset(text) : Number(at[1]);
  const before = text.slice(0, position).split("\n");
  // V8 quotes the text in some messages; a quoted newline would break the one-line-per-problem report.
  const message = error.message.replace(/\r?\n/g, "\\n");
  return `line ${before.length}, column ${(before.at(-1) ?? "").length + 1}: ${message}`;
}

/**
 * Checks the text of a bridge file and fills in the defaults. `source` is the
 * file's path: it names the file in messages and paths in it are relative to
 * its directory (whose files are checked for being readable now). `env`
 * gives the hostname for the defaults (os.hostname() when left out).
 * Throws one BridgeFileError listing every problem.
 */
export function parseBridgeConfig(text: string, source: string, env: { hostname: string } = { hostname: osHostname() }): BridgeConfig {
  const problems = new Problems();
  const fail = (): never => {
    throw new BridgeFileError(source, problems.list);
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    problems.add("file", `not JSON: ${jsonMessage(error as Error, text)}`);
    fail();
  }
  if (!isObject(parsed)) {
    problems.add("file", "must be a JSON object");
    fail();
  }
  const top = parsed as Json;
  problems.unknownKeys(top, TOP_KEYS, "");
  if (top["version"] !== BRIDGE_FILE_VERSION) problems.add("version", `must be ${BRIDGE_FILE_VERSION}${top["version"] === undefined ? " (missing)" : ` (got ${JSON.stringify(top["version"])})`}`);
  const baseDir = dirname(resolve(source));
  const nats = parseNats(top["nats"], baseDir, env.hostname, problems);
  const exports = entries(top["export"], "export", problems, (entry, at) => parseExport(entry, at, env.hostname, problems));
  const imports = entries(top["import"], "import", problems, (entry, at) => parseImport(entry, at, problems));
  const rawExport = top["export"] ?? [];
  const rawImport = top["import"] ?? [];
  if (Array.isArray(rawExport) && Array.isArray(rawImport) && rawExport.length + rawImport.length === 0) {
    problems.add("export", "no export and no import entries: nothing to bridge");
  }
  let bufferBytes = DEFAULT_BUFFER_BYTES;
  if (top["bufferBytes"] !== undefined) bufferBytes = positiveInteger(top["bufferBytes"], "bufferBytes", Number.MAX_SAFE_INTEGER, problems) ?? bufferBytes;
  const reconnect = parseReconnect(top["reconnect"], problems);
  if (problems.list.length > 0) fail();
  return {
    source,
    nats,
    export: exports,
    import: imports,
    bufferBytes,
    reconnect,
  };
}

/** Reads and checks a bridge file (parseBridgeConfig); a file that cannot be read is one problem at `file`. */
export function readBridgeFile(path: string, env?: { hostname: string }): BridgeConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new BridgeFileError(path, [{ place: "file", why: (error as Error).message }]);
  }
  return parseBridgeConfig(text, path, env);
}

/** The NATS subject a local message on `localSubject` (which matches `entry.subject`) is published to. */
export function exportedSubject(entry: BridgeExport, localSubject: string): string {
  return entry.prefix + localSubject;
}

/**
 * The local subject a NATS message on `natsSubject` is published to, or
 * undefined when there is none: the subject does not match `entry.subject`,
 * or what it maps to is not a subject xpcbus can publish (a NATS subject may
 * have characters, lengths or an `_INBOX.` start that the local side refuses;
 * the runtime drops such a message and counts it).
 */
export function mapImportedSubject(entry: BridgeImport, natsSubject: string): string | undefined {
  if (!subjectMatches(entry.subject, natsSubject)) return undefined;
  const tokens = natsSubject.split(".");
  if (tokens.length <= entry.stripTokens) return undefined;
  const local = entry.localPrefix + tokens.slice(entry.stripTokens).join(".");
  if (subjectProblem(local, false) !== undefined || local.startsWith(INBOX_PREFIX)) return undefined;
  return local;
}
