import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { clientSecureContext } from "../../src/client/secure-context.js";
import { createCa, createPeerMaterial } from "../../src/pki/index.js";

describe("clientSecureContext", () => {
  const ca = createCa({ commonName: "ca.org1", organization: "Org1MSP" });
  const a = createPeerMaterial({ mspId: "Org1MSP", ca }).tlsClient;
  const b = createPeerMaterial({ mspId: "Org1MSP", ca }).tlsClient;

  it("is built once per distinct material and shared by every dial with it", () => {
    const first = clientSecureContext([ca.certPem], a.certPem, a.keyPem);
    // Equal content in new strings and arrays (a caller that rebuilds its options) finds the same context.
    const again = clientSecureContext([`${ca.certPem}`], `${a.certPem}`, `${a.keyPem}`);
    assert.equal(again, first);
  });

  it("new material (a rotated certificate) gets its own context", () => {
    const first = clientSecureContext([ca.certPem], a.certPem, a.keyPem);
    const rotated = clientSecureContext([ca.certPem], b.certPem, b.keyPem);
    assert.notEqual(rotated, first);
    assert.notEqual(clientSecureContext([ca.certPem], undefined, undefined), first, "no client certificate");
  });

  it("keeps a bounded number of contexts, the least recently used evicted first", () => {
    const kept = clientSecureContext([ca.certPem], a.certPem, a.keyPem);
    const others = Array.from({ length: 20 }, () => createCa({ commonName: "ca.other", organization: "OtherMSP" }).certPem);
    const firstOther = clientSecureContext([others[0] as string], undefined, undefined);
    for (const [i, other] of others.entries()) {
      clientSecureContext([other], undefined, undefined);
      // `kept` is used between the others, so it stays.
      if (i % 4 === 0) assert.equal(clientSecureContext([ca.certPem], a.certPem, a.keyPem), kept);
    }
    assert.equal(clientSecureContext([ca.certPem], a.certPem, a.keyPem), kept);
    // The first other was not used again while 19 more came: it was evicted and is built anew.
    assert.notEqual(clientSecureContext([others[0] as string], undefined, undefined), firstOther);
  });

  it("unusable material throws, as Node's TLS setup does", () => {
    assert.throws(() => clientSecureContext([ca.certPem], a.certPem, b.keyPem));
    assert.throws(() => clientSecureContext([ca.certPem], "not a certificate", a.keyPem));
  });
});
