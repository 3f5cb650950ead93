/** Runs external commands (curl, buf) from tests, always bounded in time. */
import { spawn } from "node:child_process";

/** What a finished command produced. */
export interface RunResult {
  /** Exit code, or null when killed by a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** True when the command was killed for exceeding `timeoutMs`. */
  readonly timedOut: boolean;
}

/**
 * Runs `cmd` with `args` (no shell; `env` adds variables), feeding `input` on stdin, and kills it
 * (SIGKILL) when it runs longer than `timeoutMs`. Never rejects for a
 * non-zero exit; rejects only when the command cannot be started.
 */
export function run(
  cmd: string,
  args: readonly string[],
  options: { timeoutMs?: number; input?: string | Buffer; cwd?: string; env?: Readonly<Record<string, string>> } = {},
): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], {
      cwd: options.cwd,
      stdio: ["pipe", "pipe", "pipe"],
      env: options.env ? { ...process.env, ...options.env } : process.env,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.stdin.on("error", () => {}); // the command may exit before reading stdin
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        timedOut,
      });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** True when `cmd` can be found on PATH (`command -v`). */
export async function onPath(cmd: string): Promise<boolean> {
  try {
    const r = await run("sh", ["-c", `command -v ${cmd}`], { timeoutMs: 5000 });
    return r.code === 0;
  } catch {
    return false;
  }
}

/**
 * `false` when curl is on PATH, else the reason to skip a curl test: `npm
 * test` must pass where only Node and npm are installed; `.ci/run` installs
 * curl, so CI always runs them.
 */
export const skipWithoutCurl: false | string = (await onPath("curl")) ? false : "curl is not installed (.ci/run installs it)";
