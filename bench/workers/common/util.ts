/** Timing, statistics, certificates and small async helpers shared by the stacks. */
import type { EventEmitter } from "node:events";
import { type CertificateAuthority, createPeerMaterial, loadCa, type PeerMaterial } from "../../../src/pki/index.js";
import type { Init, Json } from "./ipc.js";

export const MSP_ID = "BenchMSP";

export const now = (): number => performance.now();
/** Wall-clock milliseconds (comparable across processes on one machine). */
export const wallNow = (): number => performance.timeOrigin + performance.now();

/** Percentiles of samples (microseconds in, microseconds out). */
export function summarize(samples: readonly number[]): { n: number; p50: number; p99: number; mean: number; min: number; max: number } {
  if (samples.length === 0) return { n: 0, p50: Number.NaN, p99: Number.NaN, mean: Number.NaN, min: Number.NaN, max: Number.NaN };
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] as number;
  let sum = 0;
  for (const v of s) sum += v;
  return { n: s.length, p50: q(0.5), p99: q(0.99), mean: sum / s.length, min: s[0] as number, max: s[s.length - 1] as number };
}

/** Runs `fn` sequentially up to `count` times or until `seconds` passed; returns latencies in us. */
export async function timedLoop(count: number, seconds: number, fn: (i: number) => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  const end = now() + seconds * 1000;
  for (let i = 0; i < count; i++) {
    const t0 = now();
    await fn(i);
    out.push((now() - t0) * 1000);
    if (now() >= end) break;
  }
  return out;
}

/** Runs `inflight` loops of `fn` concurrently until `seconds` passed (or `maxCount` calls); returns the rate. */
export async function loadLoop(
  inflight: number,
  seconds: number,
  maxCount: number,
  fn: () => Promise<void>,
): Promise<{ count: number; ms: number; perSecond: number }> {
  const t0 = now();
  const end = t0 + seconds * 1000;
  let count = 0;
  const lane = async () => {
    while (now() < end && count < maxCount) {
      await fn();
      count++;
    }
  };
  await Promise.all(Array.from({ length: inflight }, lane));
  const ms = now() - t0;
  return { count, ms, perSecond: (count / ms) * 1000 };
}

/** Rejects with `what` when `p` does not settle within `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves on `event`, rejects on `error` or `close` first. */
export function onceOrFail(emitter: EventEmitter, event: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (e?: unknown) => {
      emitter.off(event, ok);
      emitter.off("error", fail);
      emitter.off("close", closed);
      if (e === undefined) resolve();
      else reject(e instanceof Error ? e : new Error(String(e)));
    };
    const ok = () => done();
    const fail = (e: unknown) => done(e ?? new Error("error"));
    const closed = () => done(new Error(`closed before ${event}`));
    emitter.on(event, ok);
    emitter.on("error", fail);
    emitter.on("close", closed);
  });
}

/** Payload bytes of a data message of `size` bytes (content is irrelevant, but not all zero). */
export function payloadBytes(size: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (i * 131 + 7) & 0xff;
  return b;
}

let caCache: CertificateAuthority | undefined;

/** The benchmark CA (shared by every process of a run). */
export function benchCa(init: Init): CertificateAuthority {
  caCache ??= loadCa(init.ca.certPem, init.ca.keyPem);
  return caCache;
}

/** A fresh identity and TLS pairs issued by the benchmark CA. */
export function material(init: Init, name: string): PeerMaterial {
  return createPeerMaterial({ mspId: MSP_ID, ca: benchCa(init), commonName: name });
}

/** Bytes of `n` decimal for reports. */
export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** A JSON-friendly latency summary. */
export function latencyJson(samples: readonly number[]): Json {
  const s = summarize(samples);
  return { n: s.n, p50: round(s.p50), p99: round(s.p99), mean: round(s.mean), min: round(s.min), max: round(s.max) };
}

/** Maps `items` with at most `limit` calls of `fn` in flight. */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

/** Tracks replies by nonce: `expect(nonce, n)` resolves after `n` deliveries of that nonce. */
export class ReplyRouter<K> {
  private readonly waiters = new Map<K, { left: number; resolve: () => void }>();

  expect(nonce: K, count = 1): Promise<void> {
    return new Promise((resolve) => this.waiters.set(nonce, { left: count, resolve }));
  }

  /** Returns true when someone waited for it. */
  deliver(nonce: K): boolean {
    const w = this.waiters.get(nonce);
    if (!w) return false;
    if (--w.left <= 0) {
      this.waiters.delete(nonce);
      w.resolve();
    }
    return true;
  }
}

/** Sampling RSS over a period (W7's stalled reader). */
export async function sampleRss(
  seconds: number,
  everyMs: number,
  tick: () => void,
  tickMs: number,
): Promise<{ t: number; rss: number; heapUsed: number }[]> {
  const samples: { t: number; rss: number; heapUsed: number }[] = [];
  const t0 = now();
  const take = () => {
    const m = process.memoryUsage();
    samples.push({ t: Math.round(now() - t0), rss: m.rss, heapUsed: m.heapUsed });
  };
  take();
  const ticker = setInterval(tick, tickMs);
  const sampler = setInterval(take, everyMs);
  await sleep(seconds * 1000);
  clearInterval(ticker);
  clearInterval(sampler);
  take();
  return samples;
}
