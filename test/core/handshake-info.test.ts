// A connection's ConnectionInfo keeps the handshake's signed data and
// signature in the buffer its PKI-ID and identity view, and makes `auth`,
// `pkiId` and `identity` on read: the same bytes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HandshakeInfo, layoutOf, outboundOf, pkiAtOf, signedLengthOf } from "../../src/core/connection.js";

describe("HandshakeInfo", () => {
  const pkiId = Uint8Array.of(1, 2, 3);
  const identity = Uint8Array.of(4, 5);
  /** The ConnectionInfo of a handshake from `h:1` with `id` (the identity above unless given). */
  const infoOf = (
    id: Uint8Array,
    hex: string,
    signedData: Uint8Array,
    signature: Uint8Array,
    direction: "inbound" | "outbound",
    ownIdentity: Uint8Array = identity,
  ) => new HandshakeInfo(id, hex, ownIdentity, "h:1", { signedData, signature }, direction);

  it("gives back the signed data and signature kept back to back with a PKI-ID elsewhere (one copy of the three)", () => {
    const kept = Uint8Array.from({ length: 40 }, (_, i) => i);
    const info = infoOf(pkiId, "010203", kept.subarray(0, 30), kept.subarray(30), "inbound");
    assert.deepEqual(info.auth.signedData, kept.subarray(0, 30));
    assert.deepEqual(info.auth.signature, kept.subarray(30));
    assert.deepEqual(info.pkiId, pkiId);
    assert.equal(info.auth.signature.buffer, info.pkiId.buffer, "one copy");
    assert.deepEqual(info.identity, identity);
    assert.equal(info.identity.buffer, info.pkiId.buffer, "the identity in the same copy");
    assert.equal(info.endpoint, "h:1");
    assert.equal(info.direction, "inbound");
  });

  it("gives back the signed data and signature of the buffer its PKI-ID views, as views of it (a handshake's)", () => {
    const kept = Uint8Array.from({ length: 40 }, (_, i) => i);
    const ownPki = kept.subarray(4, 7);
    const ownIdentity = kept.subarray(9, 21);
    const info = infoOf(ownPki, "040506", kept.subarray(0, 30), kept.subarray(30), "inbound", ownIdentity);
    assert.deepEqual(info.auth.signedData, kept.subarray(0, 30));
    assert.deepEqual(info.auth.signature, kept.subarray(30));
    assert.equal(info.auth.signature.buffer, kept.buffer, "no copy");
    assert.deepEqual(info.pkiId, ownPki);
    assert.equal(info.pkiId.buffer, kept.buffer, "the PKI-ID is a view of the kept buffer too");
    assert.deepEqual(info.identity, ownIdentity);
    assert.equal(info.identity.buffer, kept.buffer, "so is the identity");
    assert.equal(info.identity.byteOffset, 9);
    assert.notEqual(info.identity, info.identity, "a view made on each read");
    kept[0] = 99;
    assert.equal(info.auth.signedData[0], 99, "a view of the kept buffer, not a copy");
  });

  it("copies an identity that lies outside the kept buffer (the PKI-ID within it), and keeps an empty one without a copy", () => {
    const kept = Uint8Array.from({ length: 40 }, (_, i) => i);
    const ownPki = kept.subarray(4, 7);
    const info = infoOf(ownPki, "040506", kept.subarray(0, 30), kept.subarray(30), "outbound");
    assert.deepEqual(info.identity, identity);
    assert.deepEqual(info.pkiId, ownPki);
    assert.deepEqual(info.auth.signedData, kept.subarray(0, 30));
    assert.deepEqual(info.auth.signature, kept.subarray(30));
    assert.notEqual(info.auth.signature.buffer, kept.buffer, "one copy of all of it");
    const empty = infoOf(ownPki, "040506", kept.subarray(0, 30), kept.subarray(30), "inbound", new Uint8Array(8).subarray(8));
    assert.equal(empty.identity.length, 0);
    assert.equal(empty.auth.signature.buffer, kept.buffer, "an empty identity lies anywhere: no copy");
  });

  it("gives back the same bytes when they lay apart (one copy of both)", () => {
    const signedData = Uint8Array.of(9, 8, 7);
    const signature = Uint8Array.of(6, 5);
    const info = infoOf(pkiId, "010203", signedData, signature, "outbound");
    assert.deepEqual(info.auth.signedData, signedData);
    assert.deepEqual(info.auth.signature, signature);
    const empty = infoOf(pkiId, "010203", new Uint8Array(0), new Uint8Array(0), "outbound");
    assert.equal(empty.auth.signedData.length, 0);
    assert.equal(empty.auth.signature.length, 0);
  });

  it("gives back the same views, direction included, from a buffer beyond 32 KiB (its layout then is no small integer)", () => {
    const kept = Uint8Array.from({ length: 70_000 }, (_, i) => i % 251);
    const ownPki = kept.subarray(40_000, 40_003);
    const ownIdentity = kept.subarray(50_000, 51_000);
    const hex = Buffer.from(ownPki).toString("hex");
    for (const direction of ["inbound", "outbound"] as const) {
      const info = infoOf(ownPki, hex, kept.subarray(0, 60_000), kept.subarray(60_000), direction, ownIdentity);
      assert.deepEqual(info.pkiId, ownPki);
      assert.equal(info.pkiId.byteOffset, 40_000);
      assert.equal(info.identity.byteOffset, 50_000);
      assert.deepEqual(info.identity, ownIdentity);
      assert.equal(info.auth.signedData.length, 60_000);
      assert.equal(info.auth.signature.length, 10_000);
      assert.equal(info.auth.signature.byteOffset, 60_000);
      assert.equal(info.direction, direction);
    }
    const copied = infoOf(pkiId, "010203", kept.subarray(0, 50_000), kept.subarray(1, 3), "outbound");
    assert.deepEqual(copied.pkiId, pkiId);
    assert.deepEqual(copied.identity, identity);
    assert.deepEqual(copied.auth.signedData, kept.subarray(0, 50_000));
    assert.deepEqual(copied.auth.signature, kept.subarray(1, 3));
    assert.equal(copied.direction, "outbound");
  });

  it("keeps its layout exact for any buffer size: past ~64 MiB (a handshake may be up to maxRecvMsgSize) the fields are kept as they are", () => {
    for (const size of [2 ** 26 - 3, 2 ** 26, 2 ** 26 + 5, 100 * 2 ** 20, 2 ** 31]) {
      for (const outbound of [false, true]) {
        for (const [pkiAt, signedLength] of [
          [size - 32, size - 40],
          [size - 1, size],
          [0, 0],
          [7, size - 64],
        ] as const) {
          const layout = layoutOf(pkiAt, signedLength, outbound, size);
          assert.equal(pkiAtOf(layout, size), pkiAt, `pkiAt at size ${size}`);
          assert.equal(signedLengthOf(layout, size), signedLength, `signed length at size ${size}`);
          assert.equal(outboundOf(layout), outbound, `direction at size ${size}`);
        }
      }
    }
    assert.equal(typeof layoutOf(100, 900, true, 1200), "number", "a handshake's layout is one number");
  });

  it("an 80 MiB handshake keeps its direction, PKI-ID and signed data (the packed number would not be exact)", () => {
    const size = 80 * 2 ** 20;
    const kept = new Uint8Array(size);
    const at = size - 1024;
    kept.set([9, 8, 7, 6, 5], at);
    const ownPki = kept.subarray(at, at + 3);
    const ownIdentity = kept.subarray(at + 3, at + 5);
    const info = infoOf(ownPki, "090807", kept.subarray(0, size - 64), kept.subarray(size - 64), "outbound", ownIdentity);
    assert.equal(info.direction, "outbound");
    assert.deepEqual([...info.pkiId], [9, 8, 7]);
    assert.deepEqual([...info.identity], [6, 5]);
    assert.equal(info.identity.buffer, kept.buffer);
    const copied = infoOf(ownPki, "090807", kept.subarray(0, size - 64), Uint8Array.of(1, 2), "inbound");
    assert.deepEqual([...copied.identity], [4, 5], "copied after the signed data (and the PKI-ID): still exact");
    assert.deepEqual([...copied.pkiId], [9, 8, 7]);
    assert.equal(copied.auth.signature.length, 2);
    assert.equal(info.auth.signedData.length, size - 64);
    assert.equal(info.auth.signature.length, 64);
  });
});
