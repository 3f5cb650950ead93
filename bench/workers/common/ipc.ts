/**
 * The worker side of the orchestrator protocol (bench/run.mjs).
 *
 * A worker is forked with an IPC channel and its configuration in the
 * BENCH_INIT environment variable (JSON). It announces itself with
 * `{ t: "ready", info }`, then answers `{ t: "call", id, cmd, args }` with
 * `{ t: "reply", id, ok, value | error }`. It exits on `{ t: "exit" }` (the
 * orchestrator also kills it), and on its own when the IPC channel goes
 * away (the orchestrator died), so that no worker outlives a run.
 */

import v8 from "node:v8";

/** JSON values exchanged with the orchestrator. */
export type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json | undefined };

/** Typed access to a JSON object of arguments or options. */
export class Args {
  constructor(private readonly raw: Readonly<Record<string, unknown>>) {}

  static from(value: unknown): Args {
    return new Args(typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {});
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined;
  }

  num(key: string, fallback?: number): number {
    const v = this.raw[key];
    if (typeof v === "number" && Number.isFinite(v)) return v;
    if (v === undefined && fallback !== undefined) return fallback;
    throw new TypeError(`argument ${key} must be a number, got ${JSON.stringify(v)}`);
  }

  str(key: string, fallback?: string): string {
    const v = this.raw[key];
    if (typeof v === "string") return v;
    if (v === undefined && fallback !== undefined) return fallback;
    throw new TypeError(`argument ${key} must be a string, got ${JSON.stringify(v)}`);
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.raw[key];
    if (typeof v === "boolean") return v;
    if (v === undefined && fallback !== undefined) return fallback;
    throw new TypeError(`argument ${key} must be a boolean, got ${JSON.stringify(v)}`);
  }

  nums(key: string): number[] {
    const v = this.raw[key];
    if (Array.isArray(v) && v.every((x) => typeof x === "number")) return v as number[];
    if (v === undefined) return [];
    throw new TypeError(`argument ${key} must be an array of numbers`);
  }

  strs(key: string): string[] {
    const v = this.raw[key];
    if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
    if (v === undefined) return [];
    throw new TypeError(`argument ${key} must be an array of strings`);
  }

  list(key: string): Args[] {
    const v = this.raw[key];
    if (Array.isArray(v)) return v.map((x) => Args.from(x));
    if (v === undefined) return [];
    throw new TypeError(`argument ${key} must be an array`);
  }

  obj(key: string): Args {
    return Args.from(this.raw[key]);
  }
}

/** The stacks under test. */
export type StackName = "raw" | "rawpb" | "rawhs" | "rawg" | "grpc" | "gossip" | "membership";
/** What a worker process of a stack does. */
export type StackRole = "server" | "client" | "receivers" | "storm" | "remotes";
/** What a worker process does: a stack role, or a W9 membership role. */
export type RoleName = StackRole | "sim" | "peers";

/** A worker's configuration (BENCH_INIT). */
export interface Init {
  readonly stack: StackName;
  readonly role: RoleName;
  /** Mutual TLS on every connection (default), or cleartext h2c. */
  readonly tls: boolean;
  /** The benchmark CA that issues every certificate. */
  readonly ca: { readonly certPem: string; readonly keyPem: string };
  /** Role options (mode, counts, ...). */
  readonly opts: Args;
}

export type Handler = (args: Args) => Promise<Json> | Json;

/** What a role sets up: what it announces and the commands it answers. */
export interface WorkerSpec {
  readonly info: Json;
  readonly handlers: Readonly<Record<string, Handler>>;
}

const stacks: readonly StackName[] = ["raw", "rawpb", "rawhs", "rawg", "grpc", "gossip", "membership"];
const roles: readonly RoleName[] = ["server", "client", "receivers", "storm", "remotes", "sim", "peers"];

export function readInit(): Init {
  const text = process.env.BENCH_INIT;
  if (text === undefined) throw new Error("BENCH_INIT is not set: workers are started by bench/run.mjs");
  const raw = Args.from(JSON.parse(text) as unknown);
  const stack = raw.str("stack") as StackName;
  const role = raw.str("role") as RoleName;
  if (!stacks.includes(stack)) throw new Error(`unknown stack ${stack}`);
  if (!roles.includes(role)) throw new Error(`unknown role ${role}`);
  const ca = raw.obj("ca");
  return { stack, role, tls: raw.bool("tls", true), ca: { certPem: ca.str("certPem"), keyPem: ca.str("keyPem") }, opts: raw.obj("opts") };
}

function send(message: Json): void {
  process.send?.(message);
}

function errorText(e: unknown): string {
  return e instanceof Error ? (e.stack ?? e.message) : String(e);
}

/** Memory figures, after a full GC when the process runs with --expose-gc. */
export function memory(gc: boolean): {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** Size of each V8 heap space (what heapTotal is made of), by space name. */
  spaces: Record<string, number>;
} {
  const g = (globalThis as { gc?: () => void }).gc;
  if (gc && g) {
    g();
    g();
  }
  const m = process.memoryUsage();
  const spaces: Record<string, number> = {};
  for (const s of v8.getHeapSpaceStatistics()) if (s.space_size > 0) spaces[s.space_name] = s.space_size;
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, spaces };
}

/**
 * Runs a worker: builds the role with `make`, announces it, serves calls.
 * Adds the commands every worker answers: `cpu` (process.cpuUsage, in us)
 * and `mem` (process.memoryUsage, after a GC when `gc` is true and the
 * process has --expose-gc).
 */
export function runWorker(make: (init: Init) => Promise<WorkerSpec>): void {
  if (!process.send) {
    console.error("bench worker: must be started by bench/run.mjs (no IPC channel)");
    process.exit(2);
  }
  // The orchestrator is gone: do not linger.
  process.on("disconnect", () => process.exit(3));
  process.on("uncaughtException", (e) => {
    console.error(`bench worker ${process.pid}: uncaught ${errorText(e)}`);
    process.exit(4);
  });
  process.on("unhandledRejection", (e) => {
    console.error(`bench worker ${process.pid}: unhandled rejection ${errorText(e)}`);
    process.exit(4);
  });
  const init = readInit();
  make(init).then(
    (spec) => {
      const handlers: Record<string, Handler> = {
        cpu: () => {
          const c = process.cpuUsage();
          return { user: c.user, system: c.system };
        },
        mem: (a) => memory(a.bool("gc", false)),
        ...spec.handlers,
      };
      process.on("message", (msg: unknown) => {
        const m = Args.from(msg);
        const t = m.str("t", "");
        if (t === "exit") {
          process.exit(0);
        }
        if (t !== "call") return;
        const id = m.num("id");
        const cmd = m.str("cmd");
        const handler = handlers[cmd];
        if (!handler) {
          send({ t: "reply", id, ok: false, error: `unknown command ${cmd}` });
          return;
        }
        Promise.resolve()
          .then(() => handler(m.obj("args")))
          .then(
            (value) => send({ t: "reply", id, ok: true, value }),
            (e: unknown) => send({ t: "reply", id, ok: false, error: errorText(e) }),
          );
      });
      send({ t: "ready", info: spec.info });
    },
    (e: unknown) => {
      console.error(`bench worker ${init.stack}/${init.role}: failed to start: ${errorText(e)}`);
      process.exit(5);
    },
  );
}
