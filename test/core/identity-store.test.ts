// What the identity store keeps of an identity: the bytes, never a large
// buffer they happen to be a view into.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pkiIdHex } from "../../src/core/identity.js";
import { IdentityStore } from "../../src/core/identity-store.js";
import { VirtualClock } from "../../src/core/virtual-clock.js";

const pkiId = (n: number) => new Uint8Array(32).fill(n);

describe("IdentityStore", () => {
  it("keeps a handshake's identity as the view it is (into the copied payload), without another copy", () => {
    const store = new IdentityStore(new VirtualClock());
    const payload = new Uint8Array(748).fill(7);
    const identity = payload.subarray(40, 712);
    store.put(pkiId(1), identity, undefined);
    const kept = store.get(pkiId(1));
    assert.equal(kept?.buffer, payload.buffer);
    assert.deepEqual(kept, identity);
  });

  it("copies an identity out of a much larger buffer, so that the entry does not keep that buffer alive", () => {
    const store = new IdentityStore(new VirtualClock());
    const readBuffer = new Uint8Array(64 * 1024).fill(9);
    const identity = readBuffer.subarray(1000, 1672);
    store.put(pkiId(2), identity, undefined);
    const kept = store.get(pkiId(2));
    assert.notEqual(kept?.buffer, readBuffer.buffer);
    assert.equal(kept?.buffer.byteLength, 672);
    assert.deepEqual(kept, identity);
  });

  it("keeps one array per peer: a later handshake's equal identity leaves the held array, a changed one is stored", () => {
    const store = new IdentityStore(new VirtualClock());
    const first = new Uint8Array(100).fill(3);
    const second = new Uint8Array(100).fill(3);
    store.put(pkiId(4), first, undefined);
    assert.equal(store.get(pkiId(4)), first);
    store.put(pkiId(4), second, undefined);
    assert.equal(store.get(pkiId(4)), first);
    const renewed = new Uint8Array(100).fill(5);
    store.put(pkiId(4), renewed, undefined);
    assert.equal(store.get(pkiId(4)), renewed);
  });

  it("forgets an identity after its certificate's expiry (whole seconds, as X.509's), keeps one without expiry", () => {
    const wall = { now: 1_700_000_000_000 };
    const store = new IdentityStore(new VirtualClock(), () => wall.now);
    store.put(pkiId(6), new Uint8Array(10).fill(6), new Date(wall.now + 5000));
    store.put(pkiId(7), new Uint8Array(10).fill(7), undefined);
    wall.now += 5000;
    assert.ok(store.get(pkiId(6)), "valid up to its notAfter");
    wall.now += 1;
    assert.equal(store.get(pkiId(6)), undefined);
    wall.now += 10 * 365 * 86_400_000;
    assert.ok(store.get(pkiId(7)));
  });

  it("lends a kept verifier for the same bytes only, and not past the identity's expiry", () => {
    const wall = { now: 1_700_000_000_000 };
    const store = new IdentityStore(new VirtualClock(), () => wall.now);
    const verifier = { verify: () => {}, expiresAt: new Date(wall.now + 5000) };
    const identity = new Uint8Array(10).fill(8);
    store.put(pkiId(8), identity, verifier.expiresAt, verifier);
    assert.equal(store.verifierOf(pkiIdHex(pkiId(8)), identity), verifier);
    assert.equal(store.verifierOf(pkiIdHex(pkiId(8)), new Uint8Array(10).fill(8)), verifier, "equal bytes");
    assert.equal(store.verifierOf(pkiIdHex(pkiId(8)), new Uint8Array(10).fill(9)), undefined, "other bytes");
    assert.equal(store.identityOf(pkiIdHex(pkiId(8))), identity);
    wall.now += 5001;
    assert.equal(store.verifierOf(pkiIdHex(pkiId(8)), identity), undefined, "expired");
  });
});
