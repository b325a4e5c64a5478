// The names a notifier posts on publish, `<prefix>.<subject>`, both ways: the
// one place that knows how a subject becomes a notification name and back,
// shared by the table notifier and the notify(3) one.

import { subjectNotifyName, subjectProblem } from "../../protocol/index.js";

export class NotifyPrefix {
  readonly prefix: string;
  readonly #dotted: string;

  constructor(prefix: string) {
    this.prefix = prefix;
    this.#dotted = `${prefix}.`;
  }

  /** The name posted when `subject` is published. */
  nameOf(subject: string): string {
    return subjectNotifyName(this.prefix, subject);
  }

  /** Whether `name` is under the prefix (whether or not the rest is a valid subject). */
  owns(name: string): boolean {
    return name.startsWith(this.#dotted);
  }

  /** The concrete subject `name` stands for, or undefined when it is not `<prefix>.<a valid subject>`. */
  subjectOf(name: string): string | undefined {
    if (!this.owns(name)) return undefined;
    const subject = name.slice(this.#dotted.length);
    return subjectProblem(subject, false) === undefined ? subject : undefined;
  }
}
