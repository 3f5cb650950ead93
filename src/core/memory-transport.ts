/**
 * An in-memory transport: {@link WireStream}s and {@link Dialer}s between
 * named hosts of one process, on any {@link Clock}. With a
 * {@link VirtualClock} a test runs hundreds of peers through minutes of
 * gossip timing in milliseconds, without sockets.
 *
 * It keeps the contract the socket transports keep: envelopes arrive in
 * order and in batches, a writer that outruns its reader waits (a flow-control
 * window per direction, as HTTP/2's), half-close and abort behave the same,
 * and failures surface as the same {@link GossipError} codes.
 */
import type { Clock } from "./clock.js";
import { systemClock } from "./clock.js";
import { ErrorCode, GossipError } from "./errors.js";
import { hostOf, MemoryConnection, type StreamNetwork } from "./memory-stream.js";
import type { Dialer, WireStream } from "./transport.js";

/** Options of a {@link MemoryNetwork}. */
export interface MemoryNetworkOptions {
  /** Time source for latency and timeouts. @default systemClock */
  readonly clock?: Clock;
  /** One-way delay of every batch, connection setup and Ping, in ms. @default 0 */
  readonly latencyMs?: number;
  /**
   * Bytes a writer may have in flight (written, not yet read) per stream
   * direction before `write()` waits.
   * @default 65535 (HTTP/2's initial window)
   */
  readonly windowBytes?: number;
  /** How long a dial across a partition hangs before it fails with `DialTimeout`. @default 3000 (Fabric `peer.gossip.dialTimeout`) */
  readonly dialTimeoutMs?: number;
}

/** Identity of one end of a connection, as TLS would show it. */
export interface MemoryEndpointOptions {
  /** SHA-256 of the end's certificate; makes the connection count as TLS. */
  readonly certHash?: Uint8Array;
}

/** A host serving an endpoint; {@link MemoryListener.close} is the host's crash. */
export interface MemoryListener {
  readonly endpoint: string;
  /** Stops accepting and cuts every stream it accepted. Idempotent. */
  close(): void;
}

interface Listening {
  readonly endpoint: string;
  readonly host: string;
  readonly onStream: (stream: WireStream) => void;
  readonly certHash: Uint8Array | undefined;
  readonly streams: Set<MemoryConnection>;
  closed: boolean;
}

/** A simulated network of hosts: listeners, dialers, partitions and cuts. */
export class MemoryNetwork implements StreamNetwork {
  /** @private For its streams ({@link StreamNetwork}). */
  readonly clock: Clock;
  /** @private For its streams. */
  readonly latencyMs: number;
  /** @private For its streams. */
  readonly windowBytes: number;
  private readonly dialTimeoutMs: number;
  private readonly listeners = new Map<string, Listening>();
  /** Pairs of hosts that cannot reach each other, as "a\0b" with a < b. */
  private readonly cutPairs = new Set<string>();
  private nextPort = 40_000;

  constructor(options: MemoryNetworkOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.latencyMs = options.latencyMs ?? 0;
    this.windowBytes = options.windowBytes ?? 65_535;
    this.dialTimeoutMs = options.dialTimeoutMs ?? 3000;
  }

  /**
   * Serves `endpoint` (`host:port`): every stream dialed to it is handed to
   * `onStream` (a comm's `handleStream`). Throws when it is already served.
   */
  listen(endpoint: string, onStream: (stream: WireStream) => void, options: MemoryEndpointOptions = {}): MemoryListener {
    if (this.listeners.get(endpoint)?.closed === false) throw new Error(`${endpoint} is already listening`);
    const l: Listening = { endpoint, host: hostOf(endpoint), onStream, certHash: options.certHash, streams: new Set(), closed: false };
    this.listeners.set(endpoint, l);
    return {
      endpoint,
      close: () => {
        if (l.closed) return;
        l.closed = true;
        if (this.listeners.get(endpoint) === l) this.listeners.delete(endpoint);
        for (const c of [...l.streams]) c.cut(`${endpoint} went down`);
      },
    };
  }

  /** A dialer for the host named `host` (its connections come from `host:<ephemeral port>`). */
  dialer(host: string, options: MemoryEndpointOptions = {}): Dialer {
    return {
      openStream: (endpoint, o) => this.openStream(host, options.certHash, endpoint, o.signal, o.streamTimeoutMs),
      ping: (endpoint, o) => this.connect(host, endpoint, o.signal).then(() => undefined),
    };
  }

  /** Cuts every connection between a host of `a` and a host of `b`; new dials between them time out until {@link heal}. */
  partition(a: readonly string[], b: readonly string[]): void {
    for (const x of a) for (const y of b) this.cutPairs.add(pairKey(x, y));
    for (const c of this.streams()) if (this.cutPairs.has(pairKey(c.clientHost, c.serverHost))) c.cut("network partition");
  }

  /** Ends every partition. */
  heal(): void {
    this.cutPairs.clear();
  }

  /** Cuts every connection from or to `host` (a lost link; it may dial again at once). */
  disconnect(host: string): void {
    for (const c of this.streams()) if (c.clientHost === host || c.serverHost === host) c.cut(`connection of ${host} lost`);
  }

  /** Streams open now (both ends count as one). */
  get openStreams(): number {
    let n = 0;
    for (const l of this.listeners.values()) n += l.streams.size;
    return n;
  }

  /**
   * Every open stream: those of the listeners serving now (a listener that
   * stopped cut its own). Not a set of its own: one entry per stream more.
   */
  private streams(): MemoryConnection[] {
    const all: MemoryConnection[] = [];
    for (const l of this.listeners.values()) for (const c of l.streams) all.push(c);
    return all;
  }

  private async connect(fromHost: string, endpoint: string, signal: AbortSignal): Promise<Listening> {
    const aborted = () => stopped(endpoint, signal);
    if (signal.aborted) throw aborted();
    const target = this.listeners.get(endpoint);
    if (target !== undefined && this.cutPairs.has(pairKey(fromHost, target.host))) {
      await this.wait(this.dialTimeoutMs, signal, endpoint);
      throw new GossipError(ErrorCode.DialTimeout, `dial ${endpoint} timed out after ${this.dialTimeoutMs} ms`);
    }
    if (target === undefined || target.closed) {
      throw new GossipError(ErrorCode.DialFailed, `dial ${endpoint} failed: connection refused`);
    }
    // Connection setup and the Ping that checks it: one round trip.
    if (this.latencyMs > 0) await this.wait(2 * this.latencyMs, signal, endpoint);
    if (target.closed) throw new GossipError(ErrorCode.DialFailed, `dial ${endpoint} failed: connection refused`);
    return target;
  }

  private async openStream(
    fromHost: string,
    certHash: Uint8Array | undefined,
    endpoint: string,
    signal: AbortSignal,
    streamTimeoutMs: number | undefined,
  ): Promise<WireStream> {
    const target = await this.connect(fromHost, endpoint, signal);
    const conn = new MemoryConnection(
      this,
      {
        clientHost: fromHost,
        serverHost: target.host,
        serverAddress: endpoint,
        clientAddress: `${fromHost}:${this.nextPort++}`,
        clientCertHash: certHash,
        serverCertHash: target.certHash,
      },
      target.streams,
    );
    const client = conn.end(0);
    const server = conn.end(1);
    target.streams.add(conn);
    if (streamTimeoutMs !== undefined) conn.deadline(streamTimeoutMs);
    // The server learns of the stream when its first frame could arrive.
    this.later(() => {
      if (!conn.isClosed) target.onStream(server);
    });
    return client;
  }

  private later(fn: () => void): void {
    if (this.latencyMs > 0) this.clock.setTimeout(fn, this.latencyMs);
    else queueMicrotask(fn);
  }

  private wait(ms: number, signal: AbortSignal, endpoint: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.clock.clearTimeout(timer);
        reject(stopped(endpoint, signal));
      };
      const timer = this.clock.setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}\0${b}` : `${b}\0${a}`;
}

function stopped(endpoint: string, signal: AbortSignal): GossipError {
  return new GossipError(ErrorCode.Stopping, `dial ${endpoint} aborted`, { cause: signal.reason });
}
