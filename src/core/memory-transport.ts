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
import type { Envelope } from "../gen/gossip/message_pb.js";
import type { Clock } from "./clock.js";
import { systemClock } from "./clock.js";
import { decodeEnvelope } from "./envelope.js";
import { ErrorCode, GossipError } from "./errors.js";
import { type Dialer, type WireStream, writeTaken } from "./transport.js";

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
export class MemoryNetwork {
  private readonly clock: Clock;
  private readonly latencyMs: number;
  private readonly windowBytes: number;
  private readonly dialTimeoutMs: number;
  private readonly listeners = new Map<string, Listening>();
  private readonly connections = new Set<MemoryConnection>();
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
    for (const c of [...this.connections]) if (this.cutPairs.has(pairKey(c.clientHost, c.serverHost))) c.cut("network partition");
  }

  /** Ends every partition. */
  heal(): void {
    this.cutPairs.clear();
  }

  /** Cuts every connection from or to `host` (a lost link; it may dial again at once). */
  disconnect(host: string): void {
    for (const c of [...this.connections]) if (c.clientHost === host || c.serverHost === host) c.cut(`connection of ${host} lost`);
  }

  /** Streams open now (both ends count as one). */
  get openStreams(): number {
    return this.connections.size;
  }

  private async connect(fromHost: string, endpoint: string, signal: AbortSignal): Promise<Listening> {
    const aborted = () => GossipError.from(signal.reason, ErrorCode.DialTimeout);
    if (signal.aborted) throw aborted();
    const target = this.listeners.get(endpoint);
    if (target !== undefined && this.cutPairs.has(pairKey(fromHost, target.host))) {
      await this.wait(this.dialTimeoutMs, signal);
      throw new GossipError(ErrorCode.DialTimeout, `dial ${endpoint} timed out after ${this.dialTimeoutMs} ms`);
    }
    if (target === undefined || target.closed) {
      throw new GossipError(ErrorCode.DialFailed, `dial ${endpoint} failed: connection refused`);
    }
    // Connection setup and the Ping that checks it: one round trip.
    if (this.latencyMs > 0) await this.wait(2 * this.latencyMs, signal);
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
    const tls = certHash !== undefined && target.certHash !== undefined;
    const conn = new MemoryConnection(this.clock, this.latencyMs, this.windowBytes, fromHost, target.host, () => {
      this.connections.delete(conn);
      target.streams.delete(conn);
    });
    const client = conn.end(0, { remoteAddress: endpoint, tls, remoteCertHash: target.certHash, localCertHash: certHash });
    const server = conn.end(1, {
      remoteAddress: `${fromHost}:${this.nextPort++}`,
      tls,
      remoteCertHash: certHash,
      localCertHash: target.certHash,
    });
    this.connections.add(conn);
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

  private wait(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.clock.clearTimeout(timer);
        reject(GossipError.from(signal.reason, ErrorCode.DialTimeout));
      };
      const timer = this.clock.setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}

interface EndInfo {
  readonly remoteAddress: string;
  readonly tls: boolean;
  readonly remoteCertHash: Uint8Array | undefined;
  readonly localCertHash: Uint8Array | undefined;
}

/** One direction of a stream: frames written by one end, read by the other. */
class Pipe {
  readonly batches: Envelope[][] = [];
  /** Bytes written and not yet read (the flow-control window's use). */
  inFlight = 0;
  readonly sizes: number[] = [];
  writerEnded = false;
  /** Set when the reader's iteration must fail. */
  error: GossipError | undefined;
  readerDone = false;
  wakeReader: (() => void) | undefined;
  readonly writeWaiters: { readonly resolve: () => void; readonly reject: (e: GossipError) => void }[] = [];
}

/** A stream between two ends (0 = client, 1 = server). */
class MemoryConnection {
  /** pipes[i] carries what end i writes. */
  private readonly pipes = [new Pipe(), new Pipe()] as const;
  private readonly endedWriting = [false, false];
  private closedFlag = false;
  private resolveClosed!: () => void;
  private readonly closedPromise = new Promise<void>((r) => {
    this.resolveClosed = r;
  });
  private deadlineTimer: unknown;

  constructor(
    private readonly clock: Clock,
    private readonly latencyMs: number,
    private readonly windowBytes: number,
    readonly clientHost: string,
    readonly serverHost: string,
    private readonly onClose: () => void,
  ) {}

  get isClosed(): boolean {
    return this.closedFlag;
  }

  /** Fails both ends after `ms` (the stream deadline a dialer may set). */
  deadline(ms: number): void {
    this.deadlineTimer = this.clock.setTimeout(() => {
      const e = new GossipError(ErrorCode.HandshakeTimeout, "stream deadline exceeded");
      this.fail(0, e);
      this.fail(1, e);
      this.close();
    }, ms);
  }

  /** The connection dropped under both ends (partition, crash, lost link). */
  cut(why: string): void {
    if (this.closedFlag) return;
    this.fail(0, new GossipError(ErrorCode.Canceled, `stream was closed: ${why}`));
    this.fail(1, new GossipError(ErrorCode.Canceled, `stream was closed: ${why}`));
    this.close();
  }

  end(side: 0 | 1, info: EndInfo): WireStream {
    const out = this.pipes[side];
    const inp = this.pipes[side === 0 ? 1 : 0];
    let iterated = false;
    const conn = this;
    return {
      remoteAddress: info.remoteAddress,
      tls: info.tls,
      remoteCertHash: info.remoteCertHash,
      localCertHash: info.localCertHash,
      closed: this.closedPromise,
      incoming: {
        [Symbol.asyncIterator]: () => {
          if (iterated) throw new Error("a WireStream's incoming can be iterated only once");
          iterated = true;
          return { next: () => conn.read(inp) };
        },
      },
      write: (envelopes) => conn.write(side, out, envelopes),
      end: () => conn.endSide(side),
      abort: (error) => conn.abortFrom(side, error),
    };
  }

  private write(side: 0 | 1, pipe: Pipe, envelopes: readonly Uint8Array[]): Promise<void> {
    if (this.closedFlag || this.endedWriting[side]) return Promise.reject(new GossipError(ErrorCode.Closed, "stream is closed"));
    if (envelopes.length === 0) return writeTaken;
    let bytes = 0;
    for (const e of envelopes) bytes += e.length;
    const frames = envelopes.slice();
    pipe.inFlight += bytes;
    this.deliver(() => {
      if (pipe.readerDone || pipe.error) return;
      let batch: Envelope[];
      try {
        batch = frames.map((f) => decodeEnvelope(f));
      } catch (e) {
        // As a socket transport does with a frame it cannot decode: fail the reader and cut the stream.
        const error = GossipError.from(e, ErrorCode.MalformedFrame);
        this.fail(side === 0 ? 1 : 0, error);
        this.fail(side, new GossipError(ErrorCode.Remote, `remote refused the stream: ${error.message}`));
        this.close();
        return;
      }
      pipe.batches.push(batch);
      pipe.sizes.push(bytes);
      this.wake(pipe);
    });
    if (pipe.inFlight <= this.windowBytes) return writeTaken;
    return new Promise((resolve, reject) => pipe.writeWaiters.push({ resolve, reject }));
  }

  private read(pipe: Pipe): Promise<IteratorResult<readonly Envelope[]>> {
    const batch = pipe.batches.shift();
    if (batch !== undefined) {
      pipe.inFlight -= pipe.sizes.shift() ?? 0;
      this.releaseWriters(pipe);
      return Promise.resolve({ done: false, value: batch });
    }
    if (pipe.error) {
      const e = pipe.error;
      pipe.readerDone = true;
      return Promise.reject(e);
    }
    if (pipe.writerEnded || pipe.readerDone) {
      pipe.readerDone = true;
      return Promise.resolve({ done: true, value: undefined });
    }
    return new Promise((resolve, reject) => {
      pipe.wakeReader = () => {
        pipe.wakeReader = undefined;
        this.read(pipe).then(resolve, reject);
      };
    });
  }

  private releaseWriters(pipe: Pipe): void {
    while (pipe.writeWaiters.length > 0 && pipe.inFlight <= this.windowBytes) pipe.writeWaiters.shift()?.resolve();
  }

  private endSide(side: 0 | 1): void {
    if (this.closedFlag || this.endedWriting[side]) return;
    this.endedWriting[side] = true;
    const pipe = this.pipes[side];
    this.deliver(() => {
      pipe.writerEnded = true;
      this.wake(pipe);
      if (this.endedWriting[0] && this.endedWriting[1]) this.close();
    });
  }

  private abortFrom(side: 0 | 1, error: GossipError | undefined): void {
    if (this.closedFlag) return;
    const other = side === 0 ? 1 : 0;
    // What the other end observes: a server's abort without error is a clean
    // end (status OK); a client's abort is a cancel; an abort with an error
    // reaches the remote as that refusal.
    if (error !== undefined) this.fail(other, remoteView(error));
    else if (side === 1) this.pipes[1].writerEnded = true;
    else this.fail(other, new GossipError(ErrorCode.Canceled, "stream was cancelled by the remote"));
    this.fail(side, new GossipError(ErrorCode.Canceled, "stream was closed"));
    this.close();
  }

  /** Ends end `reader`'s iteration with `error` (after what it already received) unless it ended cleanly. */
  private fail(reader: 0 | 1, error: GossipError): void {
    const pipe = this.pipes[reader === 0 ? 1 : 0];
    if (pipe.error || pipe.readerDone || pipe.writerEnded) {
      this.wake(pipe);
      return;
    }
    pipe.error = error;
    this.wake(pipe);
  }

  private close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.clock.clearTimeout(this.deadlineTimer);
    for (const pipe of this.pipes) {
      const waiters = pipe.writeWaiters.splice(0);
      for (const w of waiters) w.reject(new GossipError(ErrorCode.Closed, "stream is closed"));
      this.wake(pipe);
    }
    this.onClose();
    this.resolveClosed();
  }

  private wake(pipe: Pipe): void {
    pipe.wakeReader?.();
  }

  private deliver(fn: () => void): void {
    if (this.latencyMs > 0) this.clock.setTimeout(fn, this.latencyMs);
    else fn();
  }
}

/** What the remote end sees when a stream is refused with `error`: the same codes a gRPC client maps statuses to. */
function remoteView(error: GossipError): GossipError {
  const code = seenAs[error.code] ?? ErrorCode.Remote;
  return new GossipError(code, `remote ended the stream: ${error.message}`, { remoteStatus: error.grpcStatus });
}

const seenAs: Partial<Record<ErrorCode, ErrorCode>> = {
  [ErrorCode.Canceled]: ErrorCode.Canceled,
  [ErrorCode.Stopping]: ErrorCode.Closed,
  [ErrorCode.Closed]: ErrorCode.Closed,
  [ErrorCode.DialFailed]: ErrorCode.Closed,
  [ErrorCode.TlsFailed]: ErrorCode.Closed,
  [ErrorCode.PingFailed]: ErrorCode.Closed,
  [ErrorCode.DialTimeout]: ErrorCode.HandshakeTimeout,
  [ErrorCode.HandshakeTimeout]: ErrorCode.HandshakeTimeout,
  [ErrorCode.AckTimeout]: ErrorCode.HandshakeTimeout,
  [ErrorCode.MessageTooLarge]: ErrorCode.RateLimited,
  [ErrorCode.Overflow]: ErrorCode.RateLimited,
  [ErrorCode.RateLimited]: ErrorCode.RateLimited,
  [ErrorCode.HeadersTooLarge]: ErrorCode.RateLimited,
  [ErrorCode.TooManyResets]: ErrorCode.RateLimited,
};

function hostOf(endpoint: string): string {
  if (endpoint.startsWith("[")) return endpoint.slice(1, endpoint.indexOf("]"));
  const i = endpoint.lastIndexOf(":");
  return i > 0 ? endpoint.slice(0, i) : endpoint;
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}\0${b}` : `${b}\0${a}`;
}
