// `xpcbus reply --exec <command>`: runs the command through /bin/sh once per
// request, the request's payload on its stdin, and gives back its stdout.
// Every run is bounded in time and output, and a few run at once; a command
// that fails, overruns or floods is killed with its whole process group and
// reported as an ExecFailure, which the replier sends back as a responder error.

import { spawn, type ChildProcess } from "node:child_process";
import { EXEC_TIMEOUT_MS, MAX_CONCURRENT_EXECS, MAX_EXEC_OUTPUT_BYTES, MAX_WAITING_EXECS } from "./cli-limits.js";

export { EXEC_TIMEOUT_MS, MAX_CONCURRENT_EXECS, MAX_EXEC_OUTPUT_BYTES, MAX_WAITING_EXECS };

/** Characters of the command's stderr quoted in a failure: its last line, enough to say why. */
const STDERR_TAIL_CHARS = 512;

/** Why a run gave no reply; its message is what the requester sees. */
export class ExecFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ExecFailure";
  }
}

export interface ExecRunnerOptions {
  timeoutMs?: number;
  maxOutputBytes?: number;
  /** Where the commands' stderr goes as they write it (default: this process's stderr). */
  stderr?: NodeJS.WritableStream;
}

export class ExecRunner {
  readonly #command: string;
  readonly #timeoutMs: number;
  readonly #maxOutputBytes: number;
  readonly #stderr: NodeJS.WritableStream;
  readonly #running = new Set<ChildProcess>();
  readonly #waiting: Array<() => void> = [];
  #active = 0;
  #stopped = false;

  constructor(command: string, options: ExecRunnerOptions = {}) {
    this.#command = command;
    this.#timeoutMs = options.timeoutMs ?? EXEC_TIMEOUT_MS;
    this.#maxOutputBytes = options.maxOutputBytes ?? MAX_EXEC_OUTPUT_BYTES;
    this.#stderr = options.stderr ?? process.stderr;
  }

  /** Runs the command with `input` on its stdin; resolves with its stdout, one trailing newline trimmed. */
  async run(input: Uint8Array, env: Record<string, string> = {}): Promise<string> {
    if (this.#stopped) throw new ExecFailure("the replier is stopping");
    if (this.#active >= MAX_CONCURRENT_EXECS) {
      if (this.#waiting.length >= MAX_WAITING_EXECS) {
        throw new ExecFailure(`busy: ${MAX_CONCURRENT_EXECS} commands running and ${MAX_WAITING_EXECS} requests waiting`);
      }
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
      if (this.#stopped) throw new ExecFailure("the replier is stopping");
    }
    this.#active++;
    try {
      return await this.#runOnce(input, env);
    } finally {
      this.#active--;
      this.#waiting.shift()?.();
    }
  }

  /** Kills every running command (their requesters get an error) and refuses new runs. */
  stop(): void {
    this.#stopped = true;
    for (const child of this.#running) killGroup(child);
    for (const wake of this.#waiting.splice(0)) wake();
  }

  #runOnce(input: Uint8Array, env: Record<string, string>): Promise<string> {
    return new Promise((resolve, reject) => {
      // Its own process group (detached), so a timeout kills what the shell started too.
      const child = spawn("/bin/sh", ["-c", this.#command], { stdio: ["pipe", "pipe", "pipe"], detached: true, env: { ...process.env, ...env } });
      this.#running.add(child);
      const chunks: Buffer[] = [];
      let bytes = 0;
      let stderrTail = "";
      let failure: string | undefined;
      const fail = (why: string): void => {
        failure ??= why;
        killGroup(child);
      };
      const timer = setTimeout(() => fail(`--exec command ran longer than ${this.#timeoutMs} ms and was killed`), this.#timeoutMs);
      child.stdout!.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > this.#maxOutputBytes) return fail(`--exec command wrote more than ${this.#maxOutputBytes} bytes and was killed`);
        chunks.push(chunk);
      });
      child.stderr!.on("data", (chunk: Buffer) => {
        this.#stderr.write(chunk);
        stderrTail = (stderrTail + chunk.toString("utf8")).slice(-STDERR_TAIL_CHARS);
      });
      // A command that does not read its stdin (echo hi) closes it early: not a failure.
      child.stdin!.on("error", () => undefined);
      child.stdin!.end(input);
      child.once("error", (error) => fail(`--exec could not run /bin/sh: ${error.message}`));
      child.once("close", (code, signal) => {
        clearTimeout(timer);
        this.#running.delete(child);
        if (failure === undefined && code !== 0) {
          const said = lastLine(stderrTail);
          failure = `--exec command ${code === null ? `was killed by ${signal}` : `exited with status ${code}`}${said === "" ? "" : `: ${said}`}`;
        }
        if (failure !== undefined) return reject(new ExecFailure(failure));
        resolve(trimNewline(Buffer.concat(chunks).toString("utf8")));
      });
    });
  }
}

/** Kills the command's process group: the shell may have exited while what it started still runs. */
function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

function trimNewline(text: string): string {
  if (text.endsWith("\r\n")) return text.slice(0, -2);
  return text.endsWith("\n") ? text.slice(0, -1) : text;
}

function lastLine(text: string): string {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "");
  return lines[lines.length - 1] ?? "";
}
