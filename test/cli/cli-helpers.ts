/**
 * Drives the real `gossip-connect` binary (node bin/gossip-connect.js) from
 * tests: one-shot commands with a time limit, and long-running ones (serve,
 * mesh) whose stdout is read line by line and which are always stopped.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type RunResult, run } from "../helpers/exec.js";

/** The package's bin script. */
export const bin = resolve("bin", "gossip-connect.js");

export type { RunResult } from "../helpers/exec.js";

/**
 * Runs `cmd args` (no shell) to completion, SIGKILLed after `timeoutMs` (default 60 s: a guard against a
 * hang, not a speed check; at a load of ~7 on 2 cores a usage error of one of 7 CLIs started at once, each
 * compiling the sources through tsx, was printed after ~20 s, and the old 20 s guard killed it); `env` adds
 * variables.
 */
export function runProcess(
  cmd: string,
  args: readonly string[],
  options: { timeoutMs?: number; env?: Readonly<Record<string, string>> } = {},
): Promise<RunResult> {
  return run(cmd, args, { timeoutMs: 60_000, ...options });
}

/** Runs `gossip-connect ...args` to completion (killed after `timeoutMs`); `env` adds variables. */
export function cli(
  args: readonly string[],
  options: { timeoutMs?: number; env?: Readonly<Record<string, string>> } = {},
): Promise<RunResult> {
  return runProcess(process.execPath, [bin, ...args], options);
}

/** Runs a shell command line (for pasting the commands the CLI prints), bounded in time. */
export function shell(line: string, timeoutMs = 15_000): Promise<RunResult> {
  return runProcess("sh", ["-c", line], { timeoutMs });
}

/** The stderr of a failed command is one line naming the problem and the fix. */
export function oneErrorLine(stderr: string): string {
  const lines = stderr.trimEnd().split("\n");
  if (lines.length !== 1) throw new Error(`expected one stderr line, got ${lines.length}:\n${stderr}`);
  const line = lines[0] as string;
  if (!/^gossip-connect( \w+)?: .+; fix: .+/.test(line)) throw new Error(`stderr line lacks "problem; fix: ...": ${line}`);
  return line;
}

/** A running long-lived command. */
export class Running {
  readonly lines: string[] = [];
  stderr = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private partial = "";
  private waiters: (() => void)[] = [];

  constructor(readonly proc: ChildProcessWithoutNullStreams) {
    proc.stdout.setEncoding("utf8");
    proc.stderr.setEncoding("utf8");
    proc.stdout.on("data", (chunk: string) => {
      const parts = (this.partial + chunk).split("\n");
      this.partial = parts.pop() ?? "";
      this.lines.push(...parts);
      this.notify();
    });
    proc.stderr.on("data", (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) =>
      proc.once("close", (code, signal) => {
        this.notify();
        resolve({ code, signal });
      }),
    );
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** JSON objects printed so far (lines that parse). */
  json(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const l of this.lines) {
      try {
        out.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // not JSON
      }
    }
    return out;
  }

  /** Resolves with the first stdout line that `pred` accepts; rejects after `ms` or when the process exits first. */
  async waitForLine(pred: (line: string) => boolean, ms = 15_000): Promise<string> {
    const deadline = Date.now() + ms;
    let exited = false;
    void this.exited.then(() => {
      exited = true;
    });
    for (;;) {
      const hit = this.lines.find(pred);
      if (hit !== undefined) return hit;
      if (exited) throw new Error(`process exited before the expected line; stdout:\n${this.lines.join("\n")}\nstderr:\n${this.stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no expected line within ${ms} ms; stdout:\n${this.lines.join("\n")}\nstderr:\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Resolves with the first JSON event named `event` (and matching `pred`). */
  async waitForEvent(
    event: string,
    pred: (e: Record<string, unknown>) => boolean = () => true,
    ms = 15_000,
  ): Promise<Record<string, unknown>> {
    const line = await this.waitForLine((l) => {
      try {
        const o = JSON.parse(l) as Record<string, unknown>;
        return o.event === event && pred(o);
      } catch {
        return false;
      }
    }, ms);
    return JSON.parse(line) as Record<string, unknown>;
  }

  /** Sends `signal` and waits for the exit (SIGKILL after `ms`). */
  async stop(
    signal: NodeJS.Signals = "SIGTERM",
    ms = 5000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; tookMs: number }> {
    const t0 = Date.now();
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), ms);
    const r = await this.exited;
    clearTimeout(timer);
    return { ...r, tookMs: Date.now() - t0 };
  }
}

/** Starts `gossip-connect ...args` in the background; `env` adds variables. */
export function start(args: readonly string[], env: Readonly<Record<string, string>> = {}): Running {
  return new Running(spawn(process.execPath, [bin, ...args], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } }));
}

/** Starts `serve --json` on a free loopback port and waits for its `started` event. */
export async function serve(args: readonly string[]): Promise<{ peer: Running; endpoint: string; pkiId: string }> {
  const peer = start(["serve", "--listen", "127.0.0.1:0", "--json", ...args]);
  try {
    const started = await peer.waitForEvent("started");
    return { peer, endpoint: String(started.endpoint), pkiId: String(started.pkiId) };
  } catch (e) {
    await peer.stop("SIGKILL");
    throw e;
  }
}

/** Occupies a free loopback port (to test "port in use"); close() releases it. */
export async function holdPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** A temporary directory, removed by the returned function. */
export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
