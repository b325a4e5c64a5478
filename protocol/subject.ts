// Subject rules and wildcard matching (docs/PROTOCOL.md, "Subjects").
// Subjects are dot-separated tokens so that `<prefix>.<subject>` is directly a
// notify(3) name. `*` stands for exactly one token, `>` for one or more
// trailing tokens (NATS semantics: `a.>` matches `a.b` and `a.b.c`, not `a`).

import { MAX_QUEUE_NAME_BYTES, MAX_SUBJECT_BYTES, MAX_SUBJECT_TOKENS } from "./limits.js";

// Token characters: ASCII letters, digits, `_`, `-` and `:`. Narrow on purpose:
// every such name is a valid notify(3) name, a valid XPC dictionary string and
// a valid file-name fragment, and nothing needs escaping on the command line.
const TOKEN = /^[A-Za-z0-9_:-]+$/;

export type SubjectProblem = string;

/** Token characters by char code, for the one-pass check below. */
const TOKEN_CHAR = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_:-") TOKEN_CHAR[c.charCodeAt(0)] = 1;
const DOT = 46;
const STAR = 42;
const GT = 62;

/**
 * The number of tokens of a valid `subject`, or -1 when it breaks any rule
 * of subjectProblem() (which then says which): one pass over the characters,
 * no split and no regular expression, for the broker's and the SDK's hot path.
 */
export function validSubjectTokens(subject: string, wildcards: boolean): number {
  const n = subject.length;
  if (n === 0 || n > MAX_SUBJECT_BYTES) return -1;
  let tokens = 1;
  let start = 0;
  let wild = false;
  for (let i = 0; i < n; i++) {
    const c = subject.charCodeAt(i);
    if (c === DOT) {
      if (i === start || (wild && i - start !== 1)) return -1;
      // ">" only as the last token.
      if (wild && subject.charCodeAt(start) === GT) return -1;
      tokens++;
      start = i + 1;
      wild = false;
    } else if (c === STAR || c === GT) {
      if (!wildcards) return -1;
      wild = true;
    } else if (c >= 128 || TOKEN_CHAR[c] === 0) {
      return -1;
    }
  }
  if (start === n || (wild && n - start !== 1)) return -1;
  return tokens > MAX_SUBJECT_TOKENS ? -1 : tokens;
}

/**
 * Returns why `subject` is not acceptable, or undefined when it is.
 * `wildcards` allows `*` and `>` tokens (subscriptions), which publishes may not use.
 */
export function subjectProblem(subject: unknown, wildcards: boolean): SubjectProblem | undefined {
  if (typeof subject !== "string") return "a subject must be a string";
  if (validSubjectTokens(subject, wildcards) >= 0) return undefined;
  if (subject.length === 0) return "a subject must not be empty";
  if (subject.length > MAX_SUBJECT_BYTES) return `a subject is at most ${MAX_SUBJECT_BYTES} bytes (got ${subject.length})`;
  const tokens = subject.split(".");
  if (tokens.length > MAX_SUBJECT_TOKENS) return `a subject has at most ${MAX_SUBJECT_TOKENS} tokens (got ${tokens.length})`;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as string;
    if (token.length === 0) return `subject "${subject}" has an empty token at position ${i + 1}`;
    if (token === "*" || token === ">") {
      if (!wildcards) return `subject "${subject}" has the wildcard "${token}", which only subscriptions may use`;
      if (token === ">" && i !== tokens.length - 1) return `in subject "${subject}", ">" may only be the last token`;
      continue;
    }
    if (!TOKEN.test(token)) {
      return `subject "${subject}" has token "${token}" with a character outside A-Z a-z 0-9 _ - :`;
    }
  }
  return undefined;
}

export function queueNameProblem(queue: unknown): SubjectProblem | undefined {
  if (typeof queue !== "string") return "a queue group name must be a string";
  if (queue.length === 0 || queue.length > MAX_QUEUE_NAME_BYTES) {
    return `a queue group name is 1 to ${MAX_QUEUE_NAME_BYTES} bytes`;
  }
  if (!TOKEN.test(queue)) return `queue group "${queue}" has a character outside A-Z a-z 0-9 _ - :`;
  return undefined;
}

export function hasWildcard(subject: string): boolean {
  return subject.split(".").some((t) => t === "*" || t === ">");
}

/**
 * Whether the concrete `subject` matches the (possibly wildcard) `pattern`.
 * Both must already be valid. The broker matches through its trie; this
 * linear form serves the client's local dispatch and the retained replay.
 */
export function subjectMatches(pattern: string, subject: string): boolean {
  if (pattern === subject) return true;
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    const token = p[i];
    if (token === ">") return s.length > i;
    if (i >= s.length) return false;
    if (token !== "*" && token !== s[i]) return false;
  }
  return p.length === s.length;
}
