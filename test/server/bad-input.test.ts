// Bad input on the server's ports gets a clean protocol error, is counted
// and logged once, and the server keeps serving: garbage bytes (h2c and TLS),
// HTTP/1.1 on the h2c port, unknown methods, malformed gRPC frames, frames
// over the size limit, unknown compression.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import * as net from "node:net";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type * as grpcTypes from "@grpc/grpc-js";
import type { Logger } from "../../src/core/logger.js";
import { EmptySchema, Gossip } from "../../src/gen/gossip/message_pb.js";
import { run, skipWithoutCurl } from "../helpers/exec.js";
import { connectRaw, grpcFrame, grpcHeaders, grpcMessages, rawRequest } from "../helpers/h2.js";
import { metricValue, startPeer, type TestPeer } from "../helpers/peers.js";

const require = createRequire(import.meta.url);
const grpc = require("@grpc/grpc-js") as typeof grpcTypes;

/** A Logger that records every line (with the bindings of its children). */
function captureLogger(): { logger: Logger; lines: { level: string; msg: string; obj: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string; obj: Record<string, unknown> }[] = [];
  const make = (bindings: Record<string, unknown>): Logger => {
    const at = (level: string) => (obj: object, msg: string) => lines.push({ level, msg, obj: { ...bindings, ...obj } });
    return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), child: (b) => make({ ...bindings, ...b }) };
  };
  return { logger: make({}), lines };
}

const maxMessageBytes = 1024;
const h2cLog = captureLogger();
let h2c: TestPeer;
let tlsPeer: TestPeer;

before(async () => {
  h2c = await startPeer({ tls: false, options: { maxMessageBytes }, plugin: { metrics: true, logger: h2cLog.logger } });
  tlsPeer = await startPeer({ tls: true, plugin: { metrics: true } });
});

after(async () => {
  await h2c?.close();
  await tlsPeer?.close();
});

const refused = (peer: TestPeer, reason: string) => metricValue(peer, "gossip_comm_refused_total", { reason });
const inboundHandshakes = (peer: TestPeer, outcome: string) =>
  metricValue(peer, "gossip_comm_handshakes_total", { direction: "inbound", outcome });

/** Asserts the server still answers a Ping from a fresh gRPC client (a new connection). */
async function assertStillServing(peer: TestPeer, tls: boolean): Promise<void> {
  const m = peer.material;
  const transport = createGrpcTransport({
    baseUrl: `${tls ? "https" : "http"}://${peer.endpoint}`,
    nodeOptions: tls ? { ca: m.ca.certPem, cert: m.tlsClient.certPem, key: m.tlsClient.keyPem } : {},
  });
  const res = await createClient(Gossip, transport).ping(create(EmptySchema), { timeoutMs: 3000 });
  assert.equal(res.$typeName, "gossip.Empty");
}

/** Writes `bytes` on a raw TCP connection; resolves with what came back once the server closed it (or rejects after `ms`). */
function sendRaw(peer: TestPeer, bytes: Buffer, ms = 3000): Promise<{ received: Buffer; closedAfterMs: number }> {
  const port = Number(peer.endpoint.slice(peer.endpoint.lastIndexOf(":") + 1));
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const chunks: Buffer[] = [];
    const socket = net.connect(port, "127.0.0.1", () => socket.write(bytes));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server did not close the connection within ${ms}ms`));
    }, ms);
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.on("error", () => {}); // a reset counts as closed
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ received: Buffer.concat(chunks), closedAfterMs: performance.now() - t0 });
    });
  });
}

/** HTTP/2 frames (type, payload) in a raw byte string that starts at a frame boundary. */
function h2Frames(bytes: Buffer): { type: number; payload: Buffer }[] {
  const out: { type: number; payload: Buffer }[] = [];
  let at = 0;
  while (bytes.length - at >= 9) {
    const len = bytes.readUIntBE(at, 3);
    out.push({ type: bytes[at + 3] as number, payload: bytes.subarray(at + 9, at + 9 + len) });
    at += 9 + len;
  }
  return out;
}

const junk = Buffer.concat([Buffer.from("GARBAGE / NOT-HTTP\r\n\r\n"), Buffer.alloc(200, 0xa5)]);

describe("bytes that are not HTTP/2", () => {
  it("garbage on the h2c port: GOAWAY with an error code, connection closed, counted, server alive", async () => {
    const before = await refused(h2c, "malformed_frame");
    const { received, closedAfterMs } = await sendRaw(h2c, junk);
    assert.ok(closedAfterMs < 3000);
    const goaway = h2Frames(received).find((f) => f.type === 0x7);
    assert.ok(goaway, `expected a GOAWAY frame, got ${received.toString("hex")}`);
    assert.notEqual(goaway.payload.readUInt32BE(4), 0, "GOAWAY carries an error code, not NO_ERROR");
    assert.ok((await refused(h2c, "malformed_frame")) > before, "counted");
    await assertStillServing(h2c, false);
  });

  it("garbage repeated from one address is logged once (rate-limited), at warn", async () => {
    const count = () => h2cLog.lines.filter((l) => l.msg === "HTTP/2 session error").length;
    const logged = count();
    for (let i = 0; i < 3; i++) await sendRaw(h2c, junk);
    // Within the limiter's interval, at most one more line for the same address and error.
    assert.ok(count() - logged <= 1, `logged ${count() - logged} lines for 3 identical faults`);
    const lines = h2cLog.lines.filter((l) => l.msg === "HTTP/2 session error");
    assert.ok(lines.length >= 1, "the fault was logged");
    assert.ok(lines.every((l) => l.level === "warn"));
    assert.equal(lines[0]?.obj.address, "127.0.0.1");
    await assertStillServing(h2c, false);
  });

  it("garbage on the TLS port: connection closed, counted as tls_failed, server alive", async () => {
    const before = await refused(tlsPeer, "tls_failed");
    const { closedAfterMs } = await sendRaw(tlsPeer, junk);
    assert.ok(closedAfterMs < 3000);
    assert.ok((await refused(tlsPeer, "tls_failed")) > before, "counted");
    await assertStillServing(tlsPeer, true);
  });

  it("HTTP/1.1 to the h2c port: curl fails, the server counts it and stays alive", { skip: skipWithoutCurl }, async () => {
    const before = await refused(h2c, "malformed_frame");
    const r = await run("curl", [
      "-sS",
      "--http1.1",
      "-H",
      "Content-Type: application/json",
      "-d",
      "{}",
      `http://${h2c.endpoint}/gossip.Gossip/Ping`,
    ]);
    assert.notEqual(r.code, 0, "an HTTP/1.1 request must not succeed on the h2c port");
    assert.notEqual(r.stdout, "{}");
    assert.ok((await refused(h2c, "malformed_frame")) > before, "counted");
    await assertStillServing(h2c, false);
  });
});

describe("unknown methods and content types", () => {
  it("Connect JSON to an unknown method: HTTP 404", async () => {
    const session = connectRaw(h2c, { tls: false });
    try {
      const res = await rawRequest(session, "/gossip.Gossip/Nope", { "content-type": "application/json" }, [Buffer.from("{}")]);
      assert.equal(res.headers[":status"], 404);
    } finally {
      session.close();
    }
    await assertStillServing(h2c, false);
  });

  it("Ping with an unsupported content type: HTTP 415", async () => {
    const session = connectRaw(h2c, { tls: false });
    try {
      const res = await rawRequest(session, "/gossip.Gossip/Ping", { "content-type": "text/plain" }, [Buffer.from("{}")]);
      assert.equal(res.headers[":status"], 415);
    } finally {
      session.close();
    }
    await assertStillServing(h2c, false);
  });

  it("a gRPC client (grpc-js) calling an unknown method gets UNIMPLEMENTED (12)", async () => {
    const client = new grpc.Client(h2c.endpoint, grpc.credentials.createInsecure());
    try {
      const err = await new Promise<grpcTypes.ServiceError | null>((resolve) => {
        client.makeUnaryRequest(
          "/gossip.Gossip/Nope",
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.alloc(0),
          { deadline: Date.now() + 3000 },
          (e) => resolve(e),
        );
      });
      assert.equal(err?.code, grpc.status.UNIMPLEMENTED);
    } finally {
      client.close();
    }
    await assertStillServing(h2c, false);
  });
});

describe("malformed gRPC frames on GossipStream", () => {
  const path = "/gossip.Gossip/GossipStream";

  async function grpcStream(chunks: Buffer[], headers = grpcHeaders, endRequest = true) {
    const session = connectRaw(h2c, { tls: false });
    try {
      return await rawRequest(session, path, headers, chunks, { endRequest });
    } finally {
      session.close();
    }
  }

  it("an invalid flags byte: non-OK grpc-status in the trailers (INTERNAL), counted, server alive", async () => {
    const before = await inboundHandshakes(h2c, "malformed_frame");
    const res = await grpcStream([grpcFrame(Buffer.from([1, 2, 3]), { flags: 0x80 })]);
    assert.equal(res.headers[":status"], 200);
    // Our ConnEstablish went out first (the server speaks first), then the status.
    assert.equal(grpcMessages(res.body).length, 1);
    assert.ok(res.trailers, "the status comes in trailers");
    assert.equal(res.grpcStatus, 13);
    assert.ok((await inboundHandshakes(h2c, "malformed_frame")) > before, "counted");
    await assertStillServing(h2c, false);
  });

  it("a length prefix longer than the data sent (truncated frame, then end of stream): non-OK grpc-status", async () => {
    const res = await grpcStream([grpcFrame(Buffer.alloc(10, 1), { length: 100 })]);
    assert.equal(res.headers[":status"], 200);
    assert.ok(res.grpcStatus !== undefined && res.grpcStatus !== 0, `grpc-status ${res.grpcStatus}`);
    await assertStillServing(h2c, false);
  });

  it("a length prefix above maxMessageBytes: RESOURCE_EXHAUSTED (8) at once, without waiting for the body", async () => {
    const before = await inboundHandshakes(h2c, "message_too_large");
    // Only the header and a few bytes of a 2 KiB frame; the request stays open.
    const res = await grpcStream([grpcFrame(Buffer.alloc(16), { length: 2 * maxMessageBytes })], grpcHeaders, false);
    assert.equal(res.grpcStatus, 8);
    assert.ok((await inboundHandshakes(h2c, "message_too_large")) > before, "counted");
    await assertStillServing(h2c, false);
  });

  it("an unsupported grpc-encoding: UNIMPLEMENTED (12), counted, server alive", async () => {
    const before = await refused(h2c, "malformed_frame");
    const res = await grpcStream([grpcFrame(Buffer.alloc(4), { flags: 1 })], { ...grpcHeaders, "grpc-encoding": "snappy" });
    assert.equal(res.grpcStatus, 12);
    assert.match(String(res.headers["grpc-accept-encoding"]), /gzip/);
    assert.ok((await refused(h2c, "malformed_frame")) > before, "counted");
    await assertStillServing(h2c, false);
  });

  it("a compressed frame without a negotiated grpc-encoding: non-OK grpc-status", async () => {
    const res = await grpcStream([grpcFrame(Buffer.alloc(4), { flags: 1 })]);
    assert.ok(res.grpcStatus !== undefined && res.grpcStatus !== 0, `grpc-status ${res.grpcStatus}`);
    await assertStillServing(h2c, false);
  });
});
