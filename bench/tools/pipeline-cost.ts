/**
 * In-process CPU per message of gossip-connect's own code on the paths of
 * W2 (receive), W1/W2 (send) and W8 (relay), without sockets, TLS or
 * nghttp2: what the bench's CPU per message is made of beyond the raw
 * stack's (issue 12). CPU time per message, not wall time, so that figures
 * stay comparable on a loaded machine.
 *
 * - `rx`: framed chunks (as HTTP/2 'data' events bring them) -> gRPC wire
 *   stream -> connection -> demultiplexer -> a `for await` subscriber that
 *   reads `message.content.case`, as the bench's sink does.
 * - `tx`: `dataMessage` -> unsigned Envelope -> connection send buffer
 *   (`await`ed, as the bench's sender) -> wire stream -> framed chunk.
 * - `relay`: `rx`, and the subscriber forwards each message's received bytes
 *   to a second connection (what `Comm.forward` queues), then `tx`'s writing.
 *
 *   npx esbuild bench/tools/pipeline-cost.ts --bundle --platform=node --format=esm \
 *     --outfile=/tmp/pipeline-cost.mjs && node /tmp/pipeline-cost.mjs rx 64 8192
 *
 * Arguments: mode (`rx`, `tx`, `relay`), data bytes per message (64), bytes
 * of frames per received chunk (8192: W8's average read). Prints the CPU ns
 * per message of 9 runs and their median.
 */
import { PassThrough } from "node:stream";
import { systemClock } from "../../src/core/clock.js";
import { resolveCommConfig } from "../../src/core/config.js";
import { Connection, type ConnectionHooks } from "../../src/core/connection.js";
import { dataMessage } from "../../src/core/data-message.js";
import { Demux } from "../../src/core/demux.js";
import { encodeUnsignedEnvelope, envelopeBytes, parseGossipMessage } from "../../src/core/envelope.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import type { HandshakeResult } from "../../src/core/handshake.js";
import { pkiIdHex } from "../../src/core/identity.js";
import { noopMetrics } from "../../src/core/metrics.js";
import { type ReceivedMessage, ReceivedMessageImpl } from "../../src/core/received-message.js";
import { encodeFrames } from "../../src/grpc/framing.js";
import { Http2WireStream } from "../../src/grpc/wire-stream.js";

const mode = process.argv[2] ?? "rx";
const size = Number(process.argv[3] ?? 64);
const chunkBytes = Number(process.argv[4] ?? 8192);

/** A wire stream over nothing: chunks are handed to `onData`, writes are counted and dropped. */
class NullStream extends Http2WireStream {
  written = 0;
  constructor() {
    const facts = { remoteAddress: "127.0.0.1:1", tls: true, remoteCertHash: undefined, localCertHash: undefined };
    super(facts, { maxMessageBytes: 1 << 20, recvBuffSize: 20, gzip: false }, new PassThrough());
  }
  end(): void {}
  abort(): void {}
  protected writable(): boolean {
    return true;
  }
  protected writeChunk(buf: Buffer): boolean {
    this.written += buf.length;
    return true;
  }
  protected bufferedBytes(): number {
    return 0;
  }
  protected closeError(): GossipError {
    return new GossipError(ErrorCode.Closed, "closed");
  }
}

const config = resolveCommConfig({ overflowPolicy: "block" });
const demux = new Demux<ReceivedMessage>(config.acceptBuffSize);
const noop = () => {};
const hooks: ConnectionHooks = {
  onMessage: (envelope, conn) => demux.publish(new ReceivedMessageImpl(parseGossipMessage(envelope.payload), envelope, conn, noop)),
  onWriteError: noop,
  onReadError: (_conn, e) => console.error("read failed:", e),
};
const pki = new Uint8Array(32).fill(1);

function connection(stream: NullStream): Connection {
  const hs: HandshakeResult = {
    pkiId: pki,
    identity: pki,
    signedData: pki,
    signature: pki,
    probe: false,
    incoming: stream.incoming[Symbol.asyncIterator](),
    pending: [],
  };
  const info = {
    pkiId: pki,
    pkiIdHex: pkiIdHex(pki),
    identity: pki,
    endpoint: "127.0.0.1:1",
    auth: { signedData: pki, signature: pki },
    direction: "inbound" as const,
  };
  return new Connection(stream, hs, info, { config, metrics: noopMetrics, clock: systemClock, hooks });
}

const channel = new TextEncoder().encode("benchchannel");
const data = new Uint8Array(size).fill(7);
let seq = 1;
const message = () => {
  const n = BigInt(seq++);
  return dataMessage({ nonce: n, channel, seqNum: n, data });
};
const resolved = Promise.resolve();
const put = (conn: Connection, frame: Uint8Array): Promise<void> => (conn.offer(frame) ? resolved : conn.put(frame, noop));

const inStream = new NullStream();
connection(inStream);
const outStream = new NullStream();
const out = connection(outStream);

// rx and relay: one chunk of frames, handed over again and again.
const frames: Uint8Array[] = [];
for (let bytes = 0; bytes < chunkBytes; ) {
  const f = encodeUnsignedEnvelope(message());
  frames.push(f);
  bytes += 5 + f.length;
}
const chunk = encodeFrames(frames.map((f) => Uint8Array.from(f)));
let received = 0;
let want = 0;
let wake: (() => void) | undefined;
void (async () => {
  for await (const m of demux.subscribe(() => true)) {
    if (m.message.content.case === "dataMsg") {
      received++;
      if (mode === "relay") await put(out, envelopeBytes(m.envelope));
    }
    if (received >= want && wake !== undefined) {
      const w = wake;
      wake = undefined;
      w();
    }
  }
})();

async function run(messages: number): Promise<number> {
  const c0 = process.cpuUsage();
  if (mode === "tx") {
    for (let i = 0; i < messages; i++) await put(out, encodeUnsignedEnvelope(message()));
  } else {
    const chunks = Math.ceil(messages / frames.length);
    messages = chunks * frames.length;
    want = received + messages;
    const done = new Promise<void>((resolve) => (wake = resolve));
    for (let i = 0; i < chunks; i++) {
      inStream.onData(chunk);
      if (i % 4 === 3) await new Promise((resolve) => setImmediate(resolve));
    }
    await done;
  }
  await new Promise((resolve) => setImmediate(resolve));
  const c = process.cpuUsage(c0);
  return ((c.user + c.system) * 1000) / messages;
}

await run(50_000);
const ns: number[] = [];
for (let r = 0; r < 9; r++) ns.push(await run(300_000));
ns.sort((a, b) => a - b);
const perChunk = mode === "tx" ? "" : `, ${frames.length} a chunk`;
console.log(`${mode} ${size} B${perChunk}: CPU ns/msg ${ns.map((x) => x.toFixed(0)).join(" ")}, median ${ns[4]?.toFixed(0)}`);
process.exit(0);
