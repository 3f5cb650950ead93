/**
 * The benchmark's messages, hand-encoded for the raw stack, plus the gRPC
 * framing helpers the raw stacks share.
 *
 * Every stack sends the same GossipMessage (byte for byte, whichever encoder
 * produced it):
 *
 *   GossipMessage { nonce: seq, channel: "benchchannel", tag: CHAN_AND_ORG,
 *                   data_msg: DataMessage { payload: Payload { seq_num: seq, data: <size bytes> } } }
 *
 * inside an unsigned Envelope { payload: <that GossipMessage> } (Fabric's
 * NoopSign, as gossip sends data messages). Control messages use other
 * GossipMessage contents, so that every stack can tell them apart:
 *
 * - sync (`empty`, nonce >= SYNC_BASE): "answer me with the same message";
 *   ends a run, so that the sender knows every earlier message arrived.
 * - hello (`empty`, nonce >= HELLO_BASE): a W7 remote tells the hub its index
 *   (raw and grpc-js stacks; the gossip hub knows PKI-IDs).
 * - ack (`ack`, nonce of the data message): a W7 remote acknowledges.
 */

/** Sequence numbers and nonces of data messages start at 1 (proto3 omits 0). */
export const SYNC_BASE = 2 ** 40;
export const HELLO_BASE = 2 ** 41;

export const CHANNEL = Buffer.from("benchchannel");
/** GossipMessage.Tag.CHAN_AND_ORG. */
export const TAG_CHAN_AND_ORG = 4;

/** GossipMessage content field numbers. */
export const CONTENT_DATA = 8;
export const CONTENT_EMPTY = 13;
export const CONTENT_ACK = 22;

/** Largest chunk the raw "limit" stack writes at once (Node's practical limit per HTTP/2 write). */
export const COALESCE_BYTES = 64 * 1024;

/** Frames shorter than this are control messages (sync, hello, ack); data frames are longer. */
export const CONTROL_FRAME_MAX = 48;

export function varintLen(n: number): number {
  let len = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

export function putVarint(buf: Uint8Array, at: number, n: number): number {
  while (n >= 128) {
    buf[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

function dataLengths(seq: number, dataLen: number): { payload: number; dm: number; gm: number; env: number } {
  const payload = 1 + varintLen(seq) + 1 + varintLen(dataLen) + dataLen;
  const dm = 1 + varintLen(payload) + payload;
  const gm = 1 + varintLen(seq) + 1 + varintLen(CHANNEL.length) + CHANNEL.length + 2 + 1 + varintLen(dm) + dm;
  const env = 1 + varintLen(gm) + gm;
  return { payload, dm, gm, env };
}

/** Bytes of the gRPC frame (5-byte header + Envelope) of data message `seq`. */
export function dataFrameSize(seq: number, dataLen: number): number {
  return 5 + dataLengths(seq, dataLen).env;
}

/** Writes the gRPC frame of data message `seq` at `at`; returns the offset after it. */
export function writeDataFrame(buf: Buffer, at: number, seq: number, data: Uint8Array): number {
  const l = dataLengths(seq, data.length);
  buf[at] = 0;
  buf.writeUInt32BE(l.env, at + 1);
  at += 5;
  buf[at++] = 0x0a; // Envelope.payload
  at = putVarint(buf, at, l.gm);
  buf[at++] = 0x08; // nonce
  at = putVarint(buf, at, seq);
  buf[at++] = 0x12; // channel
  at = putVarint(buf, at, CHANNEL.length);
  buf.set(CHANNEL, at);
  at += CHANNEL.length;
  buf[at++] = 0x18; // tag
  buf[at++] = TAG_CHAN_AND_ORG;
  buf[at++] = 0x42; // data_msg (8)
  at = putVarint(buf, at, l.dm);
  buf[at++] = 0x0a; // DataMessage.payload
  at = putVarint(buf, at, l.payload);
  buf[at++] = 0x08; // seq_num
  at = putVarint(buf, at, seq);
  buf[at++] = 0x12; // data
  at = putVarint(buf, at, data.length);
  buf.set(data, at);
  return at + data.length;
}

/** One data message as a gRPC frame. */
export function dataFrame(seq: number, data: Uint8Array): Buffer {
  const buf = Buffer.allocUnsafe(dataFrameSize(seq, data.length));
  writeDataFrame(buf, 0, seq, data);
  return buf;
}

/** The gRPC frame of a control message: GossipMessage{nonce, <content field> = {}}. */
export function controlFrame(nonce: number, content: number): Buffer {
  const key = (content << 3) | 2;
  const gm = 1 + varintLen(nonce) + varintLen(key) + 1;
  const env = 1 + varintLen(gm) + gm;
  const buf = Buffer.allocUnsafe(5 + env);
  buf[0] = 0;
  buf.writeUInt32BE(env, 1);
  let at = 5;
  buf[at++] = 0x0a;
  at = putVarint(buf, at, gm);
  buf[at++] = 0x08;
  at = putVarint(buf, at, nonce);
  at = putVarint(buf, at, key);
  buf[at] = 0;
  return buf;
}

/** An empty gRPC message (the body of Ping requests and answers). */
export const EMPTY_FRAME = Buffer.from([0, 0, 0, 0, 0]);

/** Frames a serialized message. */
export function frame(message: Uint8Array): Buffer {
  const buf = Buffer.allocUnsafe(5 + message.length);
  buf[0] = 0;
  buf.writeUInt32BE(message.length, 1);
  buf.set(message, 5);
  return buf;
}

function readVarint(buf: Uint8Array, state: { at: number }): number {
  let result = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    const b = buf[state.at++];
    if (b === undefined) throw new Error("truncated varint");
    result += (b & 0x7f) * mul;
    if (b < 0x80) return result;
    mul *= 128;
  }
  throw new Error("varint too long");
}

/**
 * Reads the nonce and the content field number of the GossipMessage inside a
 * serialized Envelope, by hand (no allocation).
 */
export function peek(envelope: Uint8Array): { nonce: number; content: number } {
  const s = { at: 0 };
  let gmStart = -1;
  let gmEnd = -1;
  while (s.at < envelope.length) {
    const key = readVarint(envelope, s);
    const wt = key & 7;
    if (wt !== 2) throw new Error("unexpected Envelope field");
    const len = readVarint(envelope, s);
    if (key >>> 3 === 1) {
      gmStart = s.at;
      gmEnd = s.at + len;
      break;
    }
    s.at += len;
  }
  let nonce = 0;
  let content = 0;
  if (gmStart < 0) return { nonce, content };
  s.at = gmStart;
  while (s.at < gmEnd) {
    const key = readVarint(envelope, s);
    const field = Math.floor(key / 8);
    const wt = key & 7;
    if (wt === 0) {
      const v = readVarint(envelope, s);
      if (field === 1) nonce = v;
    } else if (wt === 2) {
      const len = readVarint(envelope, s);
      if (field >= 5) {
        content = field;
        break;
      }
      s.at += len;
    } else if (wt === 1) s.at += 8;
    else if (wt === 5) s.at += 4;
    else throw new Error(`unexpected wire type ${wt}`);
  }
  return { nonce, content };
}

/**
 * Splits a byte stream into gRPC messages. Frames inside one chunk are
 * handed out as views (no copy); only a frame split across chunks is
 * assembled.
 */
export class FrameReader {
  private readonly head = Buffer.alloc(5);
  private headFill = 0;
  private body: Buffer | undefined;
  private bodyFill = 0;

  constructor(private readonly onMessage: (message: Buffer) => void) {}

  push(chunk: Buffer): void {
    const n = chunk.length;
    let at = 0;
    while (at < n) {
      if (this.body === undefined && this.headFill === 0) {
        while (n - at >= 5) {
          const end = at + 5 + chunk.readUInt32BE(at + 1);
          if (end > n) break;
          this.onMessage(chunk.subarray(at + 5, end));
          at = end;
        }
        if (at === n) return;
      }
      if (this.body === undefined) {
        const take = Math.min(5 - this.headFill, n - at);
        chunk.copy(this.head, this.headFill, at, at + take);
        this.headFill += take;
        at += take;
        if (this.headFill < 5) return;
        this.body = Buffer.allocUnsafe(this.head.readUInt32BE(1));
        this.bodyFill = 0;
      }
      const take = Math.min(this.body.length - this.bodyFill, n - at);
      chunk.copy(this.body, this.bodyFill, at, at + take);
      this.bodyFill += take;
      at += take;
      if (this.bodyFill === this.body.length) {
        const body = this.body;
        this.body = undefined;
        this.headFill = 0;
        this.onMessage(body);
      }
    }
  }
}
