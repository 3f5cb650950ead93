/**
 * A raw HTTP/2 client on a bare TCP socket, frame by frame (RFC 9113), for
 * tests that must send what a well-behaved client library never would:
 * streams past the server's concurrency limit, HEADERS + RST_STREAM in a
 * tight loop (rapid reset, CVE-2023-44487), PING and SETTINGS floods, header
 * blocks of any size. Header blocks use HPACK literals without indexing or
 * Huffman coding, so no encoder state is needed; incoming header blocks are
 * not decoded (tests read frame types, stream ids and error codes).
 */
import * as net from "node:net";

export const FrameType = {
  Data: 0x0,
  Headers: 0x1,
  RstStream: 0x3,
  Settings: 0x4,
  Ping: 0x6,
  GoAway: 0x7,
  WindowUpdate: 0x8,
  Continuation: 0x9,
} as const;

export const Flag = { EndStream: 0x1, Ack: 0x1, EndHeaders: 0x4 } as const;

/** HTTP/2 error codes (RFC 9113 §7). */
export const H2Error = {
  NoError: 0x0,
  ProtocolError: 0x1,
  InternalError: 0x2,
  RefusedStream: 0x7,
  Cancel: 0x8,
  EnhanceYourCalm: 0xb,
} as const;

const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1); `first` holds the bits above the prefix. */
function hpackInt(value: number, prefixBits: number, first = 0): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** An HPACK header block of literal fields without indexing (new name, no Huffman). */
export function headerBlock(headers: readonly (readonly [string, string])[]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    const n = Buffer.from(name, "latin1");
    const v = Buffer.from(value, "latin1");
    parts.push(Buffer.from([0x00]), hpackInt(n.length, 7), n, hpackInt(v.length, 7), v);
  }
  return Buffer.concat(parts);
}

/** HEADERS (+ CONTINUATION frames when the block exceeds `maxFrame`) for one stream. */
export function headersFrames(streamId: number, block: Buffer, opts: { endStream?: boolean; maxFrame?: number } = {}): Buffer {
  const max = opts.maxFrame ?? 16_384;
  const out: Buffer[] = [];
  const end = opts.endStream ? Flag.EndStream : 0;
  for (let at = 0, first = true; first || at < block.length; first = false) {
    const chunk = block.subarray(at, at + max);
    at += chunk.length;
    const last = at >= block.length;
    out.push(frame(first ? FrameType.Headers : FrameType.Continuation, (first ? end : 0) | (last ? Flag.EndHeaders : 0), streamId, chunk));
  }
  return Buffer.concat(out);
}

/** Request headers of a gRPC GossipStream call. */
export function grpcRequestBlock(
  authority: string,
  path = "/gossip.Gossip/GossipStream",
  extra: readonly (readonly [string, string])[] = [],
): Buffer {
  return headerBlock([
    [":method", "POST"],
    [":scheme", "http"],
    [":authority", authority],
    [":path", path],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
    ...extra,
  ]);
}

export function rstStream(streamId: number, code: number = H2Error.Cancel): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(FrameType.RstStream, 0, streamId, p);
}

export function ping(data: Buffer = Buffer.alloc(8), ack = false): Buffer {
  return frame(FrameType.Ping, ack ? Flag.Ack : 0, 0, data);
}

export function settings(entries: readonly (readonly [number, number])[] = [], ack = false): Buffer {
  const p = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, value], i) => {
    p.writeUInt16BE(id, i * 6);
    p.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(FrameType.Settings, ack ? Flag.Ack : 0, 0, p);
}

/** A frame received from the server. */
export interface RawFrame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

/** A GOAWAY frame's fields. */
export function goAwayOf(f: RawFrame): { lastStreamId: number; code: number; debug: string } {
  return {
    lastStreamId: f.payload.readUInt32BE(0) & 0x7fffffff,
    code: f.payload.readUInt32BE(4),
    debug: f.payload.subarray(8).toString("latin1"),
  };
}

/**
 * A raw HTTP/2 connection: sends the client preface and an empty SETTINGS on
 * connect, ACKs the server's SETTINGS, and records every frame received.
 */
export class RawH2Connection {
  readonly frames: RawFrame[] = [];
  readonly socket: net.Socket;
  readonly connected: Promise<void>;
  readonly closed: Promise<void>;
  bytesReceived = 0;
  private buf: Buffer = Buffer.alloc(0);
  private listeners: (() => void)[] = [];
  isClosed = false;

  constructor(port: number, opts: { host?: string; localAddress?: string; ackSettings?: boolean; read?: boolean } = {}) {
    this.socket = net.connect({ port, host: opts.host ?? "127.0.0.1", localAddress: opts.localAddress });
    this.socket.setNoDelay(true);
    this.socket.on("error", () => {});
    this.connected = new Promise((resolve, reject) => {
      this.socket.once("connect", () => {
        this.socket.write(Buffer.concat([preface, settings()]));
        resolve();
      });
      this.socket.once("error", reject);
    });
    this.closed = new Promise((resolve) =>
      this.socket.once("close", () => {
        this.isClosed = true;
        this.notify();
        resolve();
      }),
    );
    const ackSettings = opts.ackSettings ?? true;
    if (opts.read === false) return;
    this.socket.on("data", (d: Buffer) => {
      this.bytesReceived += d.length;
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + len) break;
        const f: RawFrame = {
          type: this.buf[3] as number,
          flags: this.buf[4] as number,
          streamId: this.buf.readUInt32BE(5) & 0x7fffffff,
          payload: Buffer.from(this.buf.subarray(9, 9 + len)),
        };
        this.buf = this.buf.subarray(9 + len);
        // Keep memory bounded under floods: PING and SETTINGS ACKs are counted, not kept.
        if ((f.type === FrameType.Ping || f.type === FrameType.Settings) && f.flags & Flag.Ack) {
          this.acks[f.type === FrameType.Ping ? "ping" : "settings"]++;
        } else {
          this.frames.push(f);
        }
        if (ackSettings && f.type === FrameType.Settings && !(f.flags & Flag.Ack)) {
          this.write(settings([], true));
        }
      }
      this.notify();
    });
  }

  /** ACKs received, counted rather than stored. */
  readonly acks = { ping: 0, settings: 0 };

  /** Writes; false when the socket's buffer is full (wait for `drained()`). */
  write(b: Buffer): boolean {
    if (this.socket.destroyed) return false;
    return this.socket.write(b);
  }

  drained(): Promise<void> {
    if (this.socket.destroyed || !this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off("drain", done);
        this.socket.off("close", done);
        resolve();
      };
      this.socket.once("drain", done);
      this.socket.once("close", done);
    });
  }

  /** The first GOAWAY received, if any. */
  goAway(): { lastStreamId: number; code: number; debug: string } | undefined {
    const f = this.frames.find((x) => x.type === FrameType.GoAway);
    return f ? goAwayOf(f) : undefined;
  }

  /** RST_STREAM frames received: stream id to error code. */
  resets(): Map<number, number> {
    const m = new Map<number, number>();
    for (const f of this.frames) if (f.type === FrameType.RstStream) m.set(f.streamId, f.payload.readUInt32BE(0));
    return m;
  }

  /** Resolves when `cond()` holds (checked on every frame and on close), or rejects after `ms`. */
  async until(cond: () => boolean, ms: number, what = "condition"): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`raw h2: ${what} not met within ${ms}ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.listeners.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  private notify(): void {
    for (const l of this.listeners.splice(0)) l();
  }
}
