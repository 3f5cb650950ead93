// The one ErrorCode <-> gRPC status mapping (src/grpc/status.ts) agrees with
// core's meaning of a remote's code, so that a refusal reads the same whether
// the remote sent its code (gossip-connect) or only a gRPC status (Fabric).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode, GossipError, meaningOfRemote } from "../../src/core/errors.js";
import { codeOfGrpcStatus, errorFromGrpcStatus, GrpcStatusError, grpcStatusOf, statusTrailers } from "../../src/grpc/status.js";

describe("gRPC status mapping", () => {
  it("reads every code the same with and without the gossip-error-code trailer", () => {
    for (const code of Object.values(ErrorCode)) {
      const status = grpcStatusOf(code);
      assert.equal(codeOfGrpcStatus(status), meaningOfRemote(code), code);
      const withCode = errorFromGrpcStatus(status, "m", code);
      const withoutCode = errorFromGrpcStatus(status, "m");
      assert.equal(withCode.code, withoutCode.code, code);
      assert.equal(withCode.remoteCode, code);
      assert.equal(withoutCode.remoteCode, undefined);
      assert.ok(withoutCode.cause instanceof GrpcStatusError && withoutCode.cause.status === status);
    }
  });

  it("ignores a gossip-error-code that is not a code, and writes status, message and code as trailers", () => {
    assert.equal(errorFromGrpcStatus(16, "m", "no-such-code").remoteCode, undefined);
    assert.deepEqual(statusTrailers(undefined), { "grpc-status": "0" });
    assert.deepEqual(statusTrailers(new GossipError(ErrorCode.BadSignature, "bad 100%")), {
      "grpc-status": "16",
      "grpc-message": "bad 100%25",
      "gossip-error-code": "bad_signature",
    });
  });
});
