/**
 * gRPC length-prefixed message framing (`flags(1) length(4 BE) message`),
 * shared by the gRPC, gRPC-web and Connect streaming protocols.
 */
import { gunzipSync } from "node:zlib";
import { ErrorCode, GossipError } from "../core/errors.js";

/** Bytes of the frame header. */
export const frameHeaderBytes = 5;

/**
 * Frames serialized messages into one buffer (uncompressed), ready for a
 * single transport write. When the messages already lie back to back in one
 * buffer, each right after its own frame header (encoded one after the other
 * in a slab, see src/codec/frame-slab.ts, or a relayed run as it was
 * received), that memory is the framed buffer: a view of it, nothing copied.
 */
export function encodeFrames(messages: readonly Uint8Array[]): Buffer {
  return framedInPlace(messages) ?? copyFramed(messages, 0, messages.length);
}

/**
 * The framed region `messages` form where they are, if they do: the same
 * buffer, each message right after the previous one's end plus a header,
 * and every header byte checked (flags 0, its message's length), so the
 * region is byte for byte what copying them would write.
 */
function framedInPlace(messages: readonly Uint8Array[]): Buffer | undefined {
  const first = messages[0];
  // Checked before `.buffer` is read: an array whose contents V8 keeps inside
  // the object (offset 0) would get a separate ArrayBuffer made for it.
  if (first === undefined || first.byteOffset < frameHeaderBytes) return undefined;
  const buffer = first.buffer;
  const start = first.byteOffset - frameHeaderBytes;
  let bytes: Uint8Array | undefined;
  let at = start;
  for (const m of messages) {
    if (m.byteOffset !== at + frameHeaderBytes || m.buffer !== buffer) return undefined;
    bytes ??= new Uint8Array(buffer);
    if (!headerMatches(bytes, at, m.length)) return undefined;
    at += frameHeaderBytes + m.length;
  }
  return Buffer.from(buffer, start, at - start);
}

/**
 * {@link encodeFrames} as pieces to write one after the other (as one
 * vectored write): each run of messages that lies framed in place (see
 * {@link encodeFrames}) is a view of its memory, and the messages between
 * runs are copied together into framed buffers. So a batch that spans several
 * slabs (a busy sender's: a slab holds ~15 messages of 1 KiB, a write up to
 * 64 KiB) goes out without being copied into a new buffer, which on a busy
 * sender cost more than the copy itself (a fresh 64 KiB for every write).
 * Their concatenation is byte for byte what {@link encodeFrames} returns.
 */
export function framePieces(messages: readonly Uint8Array[]): Buffer[] {
  const pieces: Buffer[] = [];
  /**
   * The in-place run being extended: its memory (as bytes, to check headers,
   * and its buffer, kept rather than read again through the `buffer` getter
   * for every message: a third of this loop's time on W2's sender), start
   * and end.
   */
  let run: Uint8Array | undefined;
  let runBuffer: ArrayBufferLike | undefined;
  let runStart = 0;
  let runEnd = 0;
  /** The first of the messages since the last run that must be copied, or -1. */
  let copyFrom = -1;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as Uint8Array;
    const at = m.byteOffset - frameHeaderBytes;
    // Checked before `.buffer` is read (see framedInPlace).
    if (at >= 0) {
      const buffer = m.buffer;
      const bytes = run !== undefined && runBuffer === buffer ? run : new Uint8Array(buffer);
      if (headerMatches(bytes, at, m.length)) {
        if (copyFrom >= 0) {
          pieces.push(copyFramed(messages, copyFrom, i));
          copyFrom = -1;
        }
        if (bytes !== run || at !== runEnd) {
          if (runBuffer !== undefined) pieces.push(Buffer.from(runBuffer, runStart, runEnd - runStart));
          run = bytes;
          runBuffer = buffer;
          runStart = at;
        }
        runEnd = at + frameHeaderBytes + m.length;
        continue;
      }
    }
    if (runBuffer !== undefined) {
      pieces.push(Buffer.from(runBuffer, runStart, runEnd - runStart));
      run = undefined;
      runBuffer = undefined;
    }
    if (copyFrom < 0) copyFrom = i;
  }
  if (runBuffer !== undefined) pieces.push(Buffer.from(runBuffer, runStart, runEnd - runStart));
  if (copyFrom >= 0) pieces.push(copyFramed(messages, copyFrom, messages.length));
  return pieces;
}

/** True when `bytes[at, at + 5)` is the header of an uncompressed frame of `len` bytes. */
function headerMatches(bytes: Uint8Array, at: number, len: number): boolean {
  return (
    bytes[at] === 0 &&
    bytes[at + 1] === len >>> 24 &&
    bytes[at + 2] === ((len >>> 16) & 0xff) &&
    bytes[at + 3] === ((len >>> 8) & 0xff) &&
    bytes[at + 4] === (len & 0xff)
  );
}

/** `messages[from, to)` framed into one new buffer. */
function copyFramed(messages: readonly Uint8Array[], from: number, to: number): Buffer {
  let total = 0;
  for (let i = from; i < to; i++) total += frameHeaderBytes + (messages[i] as Uint8Array).length;
  const buf = Buffer.allocUnsafe(total);
  let at = 0;
  for (let i = from; i < to; i++) {
    const m = messages[i] as Uint8Array;
    buf[at] = 0;
    buf.writeUInt32BE(m.length, at + 1);
    buf.set(m, at + frameHeaderBytes);
    at += frameHeaderBytes + m.length;
  }
  return buf;
}

/** `buf[start, end)` as a plain Uint8Array view (no copy). */
function view(buf: Uint8Array, start: number, end: number): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset + start, end - start);
}

/** Where {@link FrameDecoder.each} hands each complete message: `buf[start, end)`. */
export interface FrameSink {
  onFrame(buf: Uint8Array, start: number, end: number): void;
}

/** Collects messages as views (for {@link FrameDecoder.push}). */
class ViewSink implements FrameSink {
  out: Uint8Array[] = [];
  onFrame(buf: Uint8Array, start: number, end: number): void {
    this.out.push(view(buf, start, end));
  }
}

/**
 * Incremental decoder of a stream of frames. Feed it chunks as they arrive;
 * it returns the complete messages in each. Guarantees: a length prefix
 * above `maxMessageBytes` fails at once (`MessageTooLarge`) without buffering
 * the body; an unknown flag, or a compressed frame without negotiated gzip,
 * fails with `MalformedFrame`; messages are views into the chunks when a frame
 * lies within one chunk (no copy).
 *
 * Messages are plain `Uint8Array` views, not Buffers: the decoders slice
 * every bytes field out of them, and a Buffer's slice is a Buffer, built
 * through Node's `FastBuffer` subclass, several times a plain view's cost.
 */
export class FrameDecoder {
  private partial: Buffer[] = [];
  private partialBytes = 0;
  /** Total length of the frame being assembled (header included), or -1 when the header is incomplete. */
  private need = -1;
  private compressedFlag = false;

  constructor(
    private readonly maxMessageBytes: number,
    /** Whether the peer announced `grpc-encoding: gzip`. */
    private gzip: boolean,
  ) {}

  /** Accepts gzip-compressed frames from now on (the peer announced `grpc-encoding: gzip`). */
  allowGzip(): void {
    this.gzip = true;
  }

  /** True when a frame is partly received (an end of stream now would truncate it). */
  get pending(): boolean {
    return this.partialBytes > 0;
  }

  /** Decodes the frames completed by `chunk`. Throws {@link GossipError}. */
  push(chunk: Buffer, out: Uint8Array[]): void {
    const sink = new ViewSink();
    sink.out = out;
    this.each(chunk, sink);
  }

  /**
   * Decodes the frames completed by `chunk`, handing each message to `sink`
   * as its place in a buffer (the chunk itself when the frame lies within
   * it: no view is made for it). Throws {@link GossipError}.
   */
  each(chunk: Buffer, sink: FrameSink): void {
    let at = 0;
    if (this.partialBytes > 0) {
      at = this.fillPartial(chunk, sink);
      if (at < 0) return;
    }
    while (chunk.length - at >= frameHeaderBytes) {
      const flags = chunk[at] as number;
      const len = chunk.readUInt32BE(at + 1);
      this.checkHeader(flags, len);
      const end = at + frameHeaderBytes + len;
      if (end > chunk.length) break;
      if (flags === 0) sink.onFrame(chunk, at + frameHeaderBytes, end);
      else this.inflate(view(chunk, at + frameHeaderBytes, end), sink);
      at = end;
    }
    if (at < chunk.length) {
      this.partial.push(chunk.subarray(at));
      this.partialBytes = chunk.length - at;
      this.need = -1;
      this.computeNeed();
    }
  }

  private checkHeader(flags: number, len: number): void {
    if (flags > 1) {
      throw new GossipError(ErrorCode.MalformedFrame, `invalid gRPC frame flags 0x${flags.toString(16)}`);
    }
    if (len > this.maxMessageBytes) {
      throw new GossipError(
        ErrorCode.MessageTooLarge,
        `message size ${len} is larger than configured maxMessageBytes ${this.maxMessageBytes}`,
      );
    }
  }

  /** Hands the message of a compressed frame's `body` to `sink`. */
  private inflate(body: Uint8Array, sink: FrameSink): void {
    const message = this.gunzip(body);
    sink.onFrame(message, 0, message.length);
  }

  private gunzip(body: Uint8Array): Uint8Array {
    if (!this.gzip) {
      throw new GossipError(ErrorCode.MalformedFrame, "compressed gRPC frame without a negotiated grpc-encoding");
    }
    try {
      return gunzipSync(body, { maxOutputLength: this.maxMessageBytes });
    } catch (e) {
      const tooLarge = (e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE";
      throw new GossipError(
        tooLarge ? ErrorCode.MessageTooLarge : ErrorCode.MalformedFrame,
        tooLarge
          ? `message is larger than configured maxMessageBytes ${this.maxMessageBytes} after decompression`
          : `invalid gzip message: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  /** Once 5 header bytes are buffered, learns the full frame size. */
  private computeNeed(): void {
    if (this.need >= 0 || this.partialBytes < frameHeaderBytes) return;
    const head = this.partial.length === 1 ? (this.partial[0] as Buffer) : Buffer.concat(this.partial);
    if (this.partial.length > 1) this.partial = [head];
    const flags = head[0] as number;
    const len = head.readUInt32BE(1);
    this.checkHeader(flags, len);
    this.compressedFlag = flags === 1;
    this.need = frameHeaderBytes + len;
  }

  /** Completes the buffered frame from `chunk`; returns where the rest of `chunk` starts, or -1 when consumed. */
  private fillPartial(chunk: Buffer, sink: FrameSink): number {
    let at = 0;
    if (this.need < 0) {
      const take = Math.min(frameHeaderBytes - this.partialBytes, chunk.length);
      this.partial.push(chunk.subarray(0, take));
      this.partialBytes += take;
      at = take;
      this.computeNeed();
      if (this.need < 0) return -1;
    }
    const take = Math.min(this.need - this.partialBytes, chunk.length - at);
    this.partial.push(chunk.subarray(at, at + take));
    this.partialBytes += take;
    at += take;
    if (this.partialBytes < this.need) return -1;
    const frame = Buffer.concat(this.partial, this.partialBytes);
    this.partial = [];
    this.partialBytes = 0;
    this.need = -1;
    if (this.compressedFlag) this.inflate(view(frame, frameHeaderBytes, frame.length), sink);
    else sink.onFrame(frame, frameHeaderBytes, frame.length);
    return at;
  }
}
