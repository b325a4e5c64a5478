// Which subscriptions match a subject: a token trie, so a publish costs the
// depth of the subject, not the number of subscriptions. The answer for hot
// subjects is cached (lru-cache) as a ready-to-send "match set", dropped
// whenever any subscription changes.

import { LRUCache } from "lru-cache";

/** What the index stores: anything with a pattern and an optional queue group. */
export interface IndexedSubscription<Owner> {
  readonly owner: Owner;
  readonly subject: string;
  readonly queue: string | undefined;
}

export interface QueueGroupMatch<S> {
  readonly name: string;
  readonly members: readonly S[];
}

export interface MatchSet<Owner, S extends IndexedSubscription<Owner>> {
  /** Owners with at least one plain (non-queue) matching subscription, each once, in subscription order. */
  readonly plainOwners: readonly Owner[];
  /** The first plain subscription, for requests when no queue group matches. */
  readonly firstPlain: S | undefined;
  readonly groups: readonly QueueGroupMatch<S>[];
}

interface TrieNode<S> {
  children: Map<string, TrieNode<S>>;
  /** Subscriptions whose pattern ends at this node. */
  here: Set<S>;
  /** Subscriptions whose pattern is this node's path followed by `>`. */
  rest: Set<S>;
}

function newNode<S>(): TrieNode<S> {
  return { children: new Map(), here: new Set(), rest: new Set() };
}

/** Hot subjects whose match set is kept; beyond this, the least recent are recomputed. */
export const MATCH_CACHE_ENTRIES = 4096;

/** (subject, queue group) pairs whose round-robin position is remembered; a forgotten one restarts at its first member. */
export const QUEUE_CURSOR_ENTRIES = 10_000;

export class SubjectIndex<Owner, S extends IndexedSubscription<Owner>> {
  readonly #root: TrieNode<S> = newNode();
  #count = 0;
  #order = 0;
  // Insertion order of subscriptions, so "first" is stable across trie shapes.
  readonly #rank = new WeakMap<S, number>();
  readonly #cache = new LRUCache<string, MatchSet<Owner, S>>({ max: MATCH_CACHE_ENTRIES });
  // Kept apart from the match cache so subscription churn does not reset the
  // rotation; keyed by subject and group, because one group name (the SDK's
  // "responders") serves many subjects with different members, and one shared
  // cursor would let interleaved subjects starve members.
  readonly #cursors = new LRUCache<string, { next: number }>({ max: QUEUE_CURSOR_ENTRIES });

  get size(): number {
    return this.#count;
  }

  add(sub: S): void {
    let node = this.#root;
    const tokens = sub.subject.split(".");
    for (let i = 0; i < tokens.length; i++) {
      const token = tokens[i] as string;
      if (token === ">" && i === tokens.length - 1) {
        node.rest.add(sub);
        this.#added(sub);
        return;
      }
      let child = node.children.get(token);
      if (child === undefined) {
        child = newNode();
        node.children.set(token, child);
      }
      node = child;
    }
    node.here.add(sub);
    this.#added(sub);
  }

  remove(sub: S): void {
    const tokens = sub.subject.split(".");
    const path: Array<[TrieNode<S>, string]> = [];
    let node: TrieNode<S> | undefined = this.#root;
    for (let i = 0; i < tokens.length && node !== undefined; i++) {
      const token = tokens[i] as string;
      if (token === ">" && i === tokens.length - 1) break;
      path.push([node, token]);
      node = node.children.get(token);
    }
    if (node === undefined) return;
    const last = tokens[tokens.length - 1];
    const removed = last === ">" ? node.rest.delete(sub) : node.here.delete(sub);
    if (!removed) return;
    this.#count--;
    this.#cache.clear();
    // Prune empty branches so a churn of unique subjects does not leave a trie behind.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, token] = path[i] as [TrieNode<S>, string];
      const child = parent.children.get(token) as TrieNode<S>;
      if (child.here.size > 0 || child.rest.size > 0 || child.children.size > 0) break;
      parent.children.delete(token);
    }
  }

  /** Every subscription matching the concrete `subject`, grouped for delivery. */
  match(subject: string): MatchSet<Owner, S> {
    const cached = this.#cache.get(subject);
    if (cached !== undefined) return cached;
    const found: S[] = [];
    this.#collect(this.#root, subject.split("."), 0, found);
    found.sort((a, b) => (this.#rank.get(a) as number) - (this.#rank.get(b) as number));
    const set = buildMatchSet<Owner, S>(found);
    this.#cache.set(subject, set);
    return set;
  }

  /** The member of `group` whose turn it is for `subject` (round-robin per subject and group). */
  pickMember(subject: string, group: QueueGroupMatch<S>): S {
    const key = `${group.name} ${subject}`;
    let cursor = this.#cursors.get(key);
    if (cursor === undefined) {
      cursor = { next: 0 };
      this.#cursors.set(key, cursor);
    }
    const member = group.members[cursor.next % group.members.length] as S;
    cursor.next = (cursor.next + 1) % 0x4000_0000;
    return member;
  }

  /** Distinct patterns with their subscription counts, for `status`. */
  patterns(): Array<{ subject: string; subscribers: number }> {
    const counts = new Map<string, number>();
    const walk = (node: TrieNode<S>): void => {
      for (const sub of node.here) counts.set(sub.subject, (counts.get(sub.subject) ?? 0) + 1);
      for (const sub of node.rest) counts.set(sub.subject, (counts.get(sub.subject) ?? 0) + 1);
      for (const child of node.children.values()) walk(child);
    };
    walk(this.#root);
    return [...counts].sort(([a], [b]) => (a < b ? -1 : 1)).map(([subject, subscribers]) => ({ subject, subscribers }));
  }

  #added(sub: S): void {
    this.#count++;
    this.#rank.set(sub, this.#order++);
    this.#cache.clear();
  }

  #collect(node: TrieNode<S>, tokens: string[], depth: number, out: S[]): void {
    // `>` needs at least one more token, so it matches only before the end.
    if (depth < tokens.length) for (const sub of node.rest) out.push(sub);
    if (depth === tokens.length) {
      for (const sub of node.here) out.push(sub);
      return;
    }
    const token = tokens[depth] as string;
    const exact = node.children.get(token);
    if (exact !== undefined) this.#collect(exact, tokens, depth + 1, out);
    const star = node.children.get("*");
    if (star !== undefined) this.#collect(star, tokens, depth + 1, out);
  }
}

function buildMatchSet<Owner, S extends IndexedSubscription<Owner>>(found: S[]): MatchSet<Owner, S> {
  const plainOwners: Owner[] = [];
  const seen = new Set<Owner>();
  const groups = new Map<string, S[]>();
  let firstPlain: S | undefined;
  for (const sub of found) {
    if (sub.queue === undefined) {
      firstPlain ??= sub;
      if (!seen.has(sub.owner)) {
        seen.add(sub.owner);
        plainOwners.push(sub.owner);
      }
      continue;
    }
    let members = groups.get(sub.queue);
    if (members === undefined) {
      members = [];
      groups.set(sub.queue, members);
    }
    members.push(sub);
  }
  return {
    plainOwners,
    firstPlain,
    groups: [...groups].map(([name, members]) => ({ name, members })),
  };
}
