// The gRPC Ping fast path (grpc-ping.ts): answered in the plugin's onRequest
// hijack instead of connect-fastify, but still checked as a gRPC server
// checks a unary request.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { GrpcStatus } from "../../src/grpc/status.js";
import { connectRaw, grpcFrame, grpcHeaders, grpcMessages, rawRequest } from "../helpers/h2.js";
import { startPeer, type TestPeer } from "../helpers/peers.js";

let peer: TestPeer;
before(async () => {
  peer = await startPeer({ tls: false, options: { maxMessageBytes: 1024 } });
});
after(async () => {
  await peer?.close();
});

const ping = "/gossip.Gossip/Ping";

describe("gRPC Ping fast path", () => {
  it("answers one empty message with an empty message and status 0", async () => {
    const s = connectRaw(peer, { tls: false });
    try {
      const r = await rawRequest(s, ping, grpcHeaders, [grpcFrame(Buffer.alloc(0))]);
      assert.equal(r.headers[":status"], 200);
      assert.equal(r.grpcStatus, 0);
      // Only the headers gRPC needs: each further one costs the client CPU per Ping to decode (issue 12).
      assert.deepEqual(Object.keys(r.headers).sort(), [":status", "content-type"]);
      assert.equal(r.headers["content-type"], "application/grpc+proto");
      assert.deepEqual(Object.keys(r.trailers ?? {}), ["grpc-status"]);
      assert.deepEqual(
        grpcMessages(r.body).map((m) => m.message.length),
        [0],
      );
      // Unknown fields of Empty are accepted, as protobuf parsers do; so is a gzip frame when announced.
      const unknown = await rawRequest(s, ping, grpcHeaders, [grpcFrame(Buffer.from([0x08, 0x01]))]);
      assert.equal(unknown.grpcStatus, 0);
      const gz = await rawRequest(s, ping, { ...grpcHeaders, "grpc-encoding": "gzip" }, [
        grpcFrame(gzipSync(Buffer.alloc(0)), { flags: 1 }),
      ]);
      assert.equal(gz.grpcStatus, 0);
    } finally {
      s.close();
    }
  });

  it("refuses what a gRPC server refuses: no message, two messages, a cut frame, bad protobuf, too large, unknown compression", async () => {
    const s = connectRaw(peer, { tls: false });
    try {
      const cases: [string, Buffer[], number, Record<string, string>?][] = [
        ["no message", [], GrpcStatus.InvalidArgument],
        ["two messages", [grpcFrame(Buffer.alloc(0)), grpcFrame(Buffer.alloc(0))], GrpcStatus.InvalidArgument],
        [
          "two messages in one chunk",
          [Buffer.concat([grpcFrame(Buffer.alloc(0)), grpcFrame(Buffer.alloc(0))])],
          GrpcStatus.InvalidArgument,
        ],
        [
          "an empty message, then a bad one",
          [grpcFrame(Buffer.alloc(0)), grpcFrame(Buffer.from([0x0a, 0x05, 0x01]))],
          GrpcStatus.InvalidArgument,
        ],
        [
          "an empty message, then a cut frame",
          [grpcFrame(Buffer.alloc(0)), grpcFrame(Buffer.alloc(3), { length: 10 })],
          GrpcStatus.Internal,
        ],
        ["cut frame", [grpcFrame(Buffer.alloc(3), { length: 10 })], GrpcStatus.Internal],
        ["bad protobuf", [grpcFrame(Buffer.from([0x0a, 0x05, 0x01]))], GrpcStatus.InvalidArgument],
        ["too large", [grpcFrame(Buffer.alloc(2000))], GrpcStatus.ResourceExhausted],
        ["compressed without grpc-encoding", [grpcFrame(Buffer.alloc(0), { flags: 1 })], GrpcStatus.Internal],
        ["unknown compression", [grpcFrame(Buffer.alloc(0))], GrpcStatus.Unimplemented, { "grpc-encoding": "br" }],
      ];
      for (const [what, chunks, status, extra] of cases) {
        const r = await rawRequest(s, ping, { ...grpcHeaders, ...extra }, chunks);
        assert.equal(r.grpcStatus, status, what);
      }
      // The server still answers.
      assert.equal((await rawRequest(s, ping, grpcHeaders, [grpcFrame(Buffer.alloc(0))])).grpcStatus, 0);
    } finally {
      s.close();
    }
  });
});
