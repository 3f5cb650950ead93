// A connection's ConnectionInfo keeps the handshake's signed data and
// signature in the buffer its PKI-ID views and makes `auth` on read: the same bytes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HandshakeInfo } from "../../src/core/connection.js";

describe("HandshakeInfo", () => {
  const pkiId = Uint8Array.of(1, 2, 3);
  const identity = Uint8Array.of(4, 5);

  it("gives back the signed data and signature kept back to back with a PKI-ID elsewhere (one copy of the three)", () => {
    const kept = Uint8Array.from({ length: 40 }, (_, i) => i);
    const info = new HandshakeInfo(
      pkiId,
      "010203",
      identity,
      "h:1",
      { signedData: kept.subarray(0, 30), signature: kept.subarray(30) },
      "inbound",
    );
    assert.deepEqual(info.auth.signedData, kept.subarray(0, 30));
    assert.deepEqual(info.auth.signature, kept.subarray(30));
    assert.deepEqual(info.pkiId, pkiId);
    assert.equal(info.auth.signature.buffer, info.pkiId.buffer, "one copy");
    assert.equal(info.identity, identity);
    assert.equal(info.endpoint, "h:1");
    assert.equal(info.direction, "inbound");
  });

  it("gives back the signed data and signature of the buffer its PKI-ID views, as views of it (a handshake's)", () => {
    const kept = Uint8Array.from({ length: 40 }, (_, i) => i);
    const ownPki = kept.subarray(4, 7);
    const info = new HandshakeInfo(
      ownPki,
      "040506",
      identity,
      "h:1",
      { signedData: kept.subarray(0, 30), signature: kept.subarray(30) },
      "inbound",
    );
    assert.deepEqual(info.auth.signedData, kept.subarray(0, 30));
    assert.deepEqual(info.auth.signature, kept.subarray(30));
    assert.equal(info.auth.signature.buffer, kept.buffer, "no copy");
    assert.deepEqual(info.pkiId, ownPki);
    assert.equal(info.pkiId.buffer, kept.buffer, "the PKI-ID is a view of the kept buffer too");
    kept[0] = 99;
    assert.equal(info.auth.signedData[0], 99, "a view of the kept buffer, not a copy");
  });

  it("gives back the same bytes when they lay apart (one copy of both)", () => {
    const signedData = Uint8Array.of(9, 8, 7);
    const signature = Uint8Array.of(6, 5);
    const info = new HandshakeInfo(pkiId, "010203", identity, "h:1", { signedData, signature }, "outbound");
    assert.deepEqual(info.auth.signedData, signedData);
    assert.deepEqual(info.auth.signature, signature);
    const empty = new HandshakeInfo(
      pkiId,
      "010203",
      identity,
      "h:1",
      { signedData: new Uint8Array(0), signature: new Uint8Array(0) },
      "outbound",
    );
    assert.equal(empty.auth.signedData.length, 0);
    assert.equal(empty.auth.signature.length, 0);
  });

  it("gives back the same views, direction included, from a buffer beyond 32 KiB (its layout then is no small integer)", () => {
    const kept = Uint8Array.from({ length: 70_000 }, (_, i) => i % 251);
    const ownPki = kept.subarray(40_000, 40_003);
    const hex = Buffer.from(ownPki).toString("hex");
    for (const direction of ["inbound", "outbound"] as const) {
      const info = new HandshakeInfo(
        ownPki,
        hex,
        identity,
        "h:1",
        { signedData: kept.subarray(0, 60_000), signature: kept.subarray(60_000) },
        direction,
      );
      assert.deepEqual(info.pkiId, ownPki);
      assert.equal(info.pkiId.byteOffset, 40_000);
      assert.equal(info.auth.signedData.length, 60_000);
      assert.equal(info.auth.signature.length, 10_000);
      assert.equal(info.auth.signature.byteOffset, 60_000);
      assert.equal(info.direction, direction);
    }
    const copied = new HandshakeInfo(
      pkiId,
      "010203",
      identity,
      "h:1",
      { signedData: kept.subarray(0, 50_000), signature: kept.subarray(1, 3) },
      "outbound",
    );
    assert.deepEqual(copied.pkiId, pkiId);
    assert.deepEqual(copied.auth.signedData, kept.subarray(0, 50_000));
    assert.deepEqual(copied.auth.signature, kept.subarray(1, 3));
    assert.equal(copied.direction, "outbound");
  });
});
