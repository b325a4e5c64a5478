// Integers on the command line (--count, --timeout, --pid, --uid, --gid,
// --limit NAME=N): one parser, so "abc", "-1", "1.5", "0x10" or "1e3" are
// refused alike everywhere instead of turning into NaN or a surprise value.

import { InvalidArgumentError as CommanderInvalidArgument } from "commander";

/** The longest delay setTimeout keeps (2^31 - 1 ms, about 24.8 days); a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface IntegerRange {
  /** Smallest accepted value: 0 for ids, 1 for counts and timeouts. */
  min: 0 | 1;
  /** Largest accepted value (default Number.MAX_SAFE_INTEGER). */
  max?: number;
}

/** What is wrong with `text` as a decimal integer in `range`, or undefined when it is one. */
export function integerProblem(text: string, range: IntegerRange): string | undefined {
  const kind = range.min === 0 ? "a non-negative integer" : "a positive integer";
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  // Digits only: Number() would also take "", " 7", "0x10" and "1e3".
  if (!/^\d+$/.test(text)) return `must be ${kind}`;
  const value = Number(text);
  if (value < range.min) return `must be ${kind}`;
  if (value > max) return `must be at most ${max}`;
  return undefined;
}

/** Parses `text` as a decimal integer in `range`; `problem` says what is wrong when it is not one. */
export function parseInteger(text: string, range: IntegerRange, fail: (problem: string) => never): number {
  const problem = integerProblem(text, range);
  return problem === undefined ? Number(text) : fail(problem);
}

/**
 * A commander argument parser for an integer option: a bad value is a usage
 * error (exit 2) that commander reports in one line, naming the option.
 */
export function integerOption(range: IntegerRange): (text: string) => number {
  return (text) =>
    parseInteger(text, range, (problem) => {
      throw new CommanderInvalidArgument(problem);
    });
}
