// How a subscription or a watch hands items to the application: to a
// callback, or through an async iterator backed by a bounded queue that drops
// its oldest item when full. A watch uses a bound of 1, which is Darwin's
// coalescing: a busy consumer is owed only the latest wake-up.

export interface DeliveryHooks {
  /** The callback threw, or the promise it returned rejected. Must not throw. */
  callbackFailed(error: unknown): void;
  /** The queue was full and its oldest item was dropped; `dropped` is the running total. */
  overflow(dropped: number): void;
  /** The iterator was left early (break, return): end the subscription or watch. */
  leave(): Promise<void>;
}

export class Delivery<T> implements AsyncIterable<T> {
  /** Items dropped because the queue was full. */
  dropped = 0;
  readonly #what: string;
  readonly #callback: ((item: T) => unknown) | undefined;
  readonly #maxPending: number;
  readonly #hooks: DeliveryHooks;
  readonly #queued: T[] = [];
  #head = 0;
  #waiter: ((result: IteratorResult<T>) => void) | undefined;
  #ended = false;
  #iterating = false;

  /** `what` names the owner in errors ("subscription", "watch"). */
  constructor(what: string, callback: ((item: T) => unknown) | undefined, maxPending: number, hooks: DeliveryHooks) {
    this.#what = what;
    this.#callback = callback;
    this.#maxPending = maxPending;
    this.#hooks = hooks;
  }

  get ended(): boolean {
    return this.#ended;
  }

  deliver(item: T): void {
    if (this.#ended) return;
    if (this.#callback !== undefined) {
      // A failing callback is reported, never thrown: the next item still comes.
      try {
        const result = this.#callback(item);
        if (isThenable(result)) result.then(undefined, (error: unknown) => this.#hooks.callbackFailed(error));
      } catch (error) {
        this.#hooks.callbackFailed(error);
      }
      return;
    }
    if (this.#waiter !== undefined) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter({ value: item, done: false });
      return;
    }
    if (this.#queued.length - this.#head >= this.#maxPending) {
      this.#head++;
      this.dropped++;
      this.#hooks.overflow(this.dropped);
    }
    this.#queued.push(item);
  }

  /** No more items; an iterator finishes after those already queued. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#waiter !== undefined) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter({ value: undefined, done: true });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.#callback !== undefined) throw new TypeError(`this ${this.#what} delivers to its callback; it cannot also be iterated`);
    if (this.#iterating) throw new TypeError(`a ${this.#what} can be iterated only once`);
    this.#iterating = true;
    return {
      next: () => {
        if (this.#head < this.#queued.length) {
          const value = this.#queued[this.#head] as T;
          this.#head++;
          // Compact now and then so the array does not grow with consumed slots.
          if (this.#head > 1024 && this.#head * 2 > this.#queued.length) {
            this.#queued.splice(0, this.#head);
            this.#head = 0;
          } else if (this.#head === this.#queued.length) {
            this.#queued.length = 0;
            this.#head = 0;
          }
          return Promise.resolve({ value, done: false });
        }
        if (this.#ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          this.#waiter = resolve;
        });
      },
      return: async () => {
        await this.#hooks.leave();
        return { value: undefined, done: true };
      },
    };
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === "object" || typeof value === "function") && value !== null && typeof (value as PromiseLike<unknown>).then === "function";
}
