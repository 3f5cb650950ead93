// `gossip-connect members` through the real binary, against foreign (grpc-js,
// Fabric-conformant) discovery peers over mutual TLS: what a peer discloses to
// a member of its org and to another org's peer, signatures, identity pull.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { identityOf, writeIdentity } from "../../src/cli/identity.js";
import { createPeerMaterial } from "../../src/pki/certificates.js";
import { fastForeignDiscovery, startForeignDiscovery } from "../helpers/foreign.js";
import type { ForeignDiscoveryOptions, ForeignDiscoveryPeer } from "../helpers/foreign-discovery-peer.js";
import { caFor } from "../helpers/peers.js";
import { cli, oneErrorLine, serve, tempDir } from "./cli-helpers.js";

/** Short intervals; no identity in alive messages, so entries need the identity pull. */
const fast: ForeignDiscoveryOptions = {
  ...fastForeignDiscovery,
  publishCertPeriodMs: 0,
};
const trust = ["Org1MSP", "Org2MSP"];

const tmp = tempDir("gossip-cli-members-");
const org1Dir = join(tmp.dir, "org1");
const org2Dir = join(tmp.dir, "org2");
const org1Ca = join(tmp.dir, "org1-ca.pem");
const org2Ca = join(tmp.dir, "org2-ca.pem");
const org1Pki = identityOf(writeIdentityFor("Org1MSP", org1Dir)).pkiId;
const org2Pki = identityOf(writeIdentityFor("Org2MSP", org2Dir)).pkiId;
writeFileSync(org1Ca, caFor("Org1MSP").certPem);
writeFileSync(org2Ca, caFor("Org2MSP").certPem);

function writeIdentityFor(mspId: string, dir: string) {
  const material = createPeerMaterial({ mspId, ca: caFor(mspId), commonName: `cli.${mspId.toLowerCase()}` });
  writeIdentity(dir, material, { writeCaKey: false });
  return material;
}

/** f1 (Org1, external endpoint), f2 (Org1, internal only), f3 (Org1, stopped: dead), g1 (Org2, external). */
let f1: ForeignDiscoveryPeer;
let f2: ForeignDiscoveryPeer;
let f3: ForeignDiscoveryPeer;
let g1: ForeignDiscoveryPeer;

before(async () => {
  f1 = (await startForeignDiscovery({ mspId: "Org1MSP", trust, discovery: { ...fast, externalEndpoint: "listen" } })).peer;
  [f2, f3, g1] = await Promise.all([
    startForeignDiscovery({ mspId: "Org1MSP", trust, discovery: { ...fast, bootstrap: [f1.endpoint] } }).then((r) => r.peer),
    startForeignDiscovery({ mspId: "Org1MSP", trust, discovery: { ...fast, bootstrap: [f1.endpoint] } }).then((r) => r.peer),
    startForeignDiscovery({ mspId: "Org2MSP", trust, discovery: { ...fast, externalEndpoint: "listen", anchors: [f1.endpoint] } }).then(
      (r) => r.peer,
    ),
  ]);
  const ids = [f2, f3, g1].map((p) => p.pkiIdHex);
  await f1.waitFor(() => ids.every((id) => f1.member(id)?.state === "alive"), 8000, "f1 lists f2, f3, g1");
  await f3.stop();
  await f1.waitFor(() => f1.member(f3.pkiIdHex)?.state === "dead", 8000, "f1 sees f3 dead");
  // f1 must hold f2's and g1's signed identities for the pull (it pulls them every 400 ms).
  await f1.waitFor(() => [f2.pkiIdHex, g1.pkiIdHex].every((id) => f1.pulledIdentities().includes(id)), 8000, "f1 pulled identities");
});

after(async () => {
  for (const p of [f1, f2, f3, g1]) await p?.stop();
  tmp.remove();
});

const lines = (stdout: string) =>
  stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe("members", () => {
  it("same org: every member of the org with internal endpoints, verified signatures, the responder last; never another org's", async () => {
    const r = await cli(["members", f1.endpoint, "--identity", org1Dir, "--trust-ca", org2Ca, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = lines(r.stdout);
    const summary = out.at(-1) as Record<string, unknown>;
    assert.deepEqual(
      { result: summary.result, pkiId: summary.pkiId, organization: summary.organization, alive: summary.alive, dead: summary.dead },
      {
        result: "members",
        pkiId: f1.pkiIdHex,
        organization: "Org1MSP",
        alive: 3,
        dead: 1,
      },
    );
    const members = out.slice(0, -1);
    const byId = new Map(members.map((m) => [m.pkiId as string, m]));
    assert.equal(byId.has(g1.pkiIdHex), false, "another org's member is never disclosed");
    const e2 = byId.get(f2.pkiIdHex);
    assert.deepEqual(
      {
        state: e2?.state,
        organization: e2?.organization,
        endpoint: e2?.endpoint,
        internalEndpoint: e2?.internalEndpoint,
        signature: e2?.signature,
        identity: e2?.identity,
        incNum: e2?.incNum,
      },
      {
        state: "alive",
        organization: "Org1MSP",
        endpoint: "",
        internalEndpoint: f2.endpoint,
        signature: "valid",
        identity: "pulled",
        incNum: f2.incNum.toString(),
      },
    );
    const e3 = byId.get(f3.pkiIdHex);
    assert.equal(e3?.state, "dead");
    const responder = members.filter((m) => m.state === "alive").at(-1);
    assert.deepEqual(
      {
        pkiId: responder?.pkiId,
        responder: responder?.responder,
        endpoint: responder?.endpoint,
        internalEndpoint: responder?.internalEndpoint,
        signature: responder?.signature,
        identity: responder?.identity,
      },
      {
        pkiId: f1.pkiIdHex,
        responder: true,
        endpoint: f1.endpoint,
        internalEndpoint: f1.endpoint,
        signature: "valid",
        identity: "handshake",
      },
    );
    assert.match(String(responder?.started), /^\d{4}-\d\d-\d\dT/);
    // The peer learned us from the request (with the internal endpoint nobody listens on), and lists us too.
    assert.equal(f1.member(org1Pki)?.internalEndpoint, "127.0.0.1:0");
    const us = byId.get(org1Pki);
    assert.deepEqual(
      { us: us?.us, internalEndpoint: us?.internalEndpoint, signature: us?.signature },
      { us: true, internalEndpoint: "127.0.0.1:0", signature: "valid" },
    );
  });

  it("prints a table for people", async () => {
    const r = await cli(["members", f1.endpoint, "--identity", org1Dir]);
    assert.equal(r.code, 0, r.stderr);
    const text = r.stdout;
    assert.match(text, new RegExp(`^membership view of ${f1.endpoint} \\(PKI-ID ${f1.pkiIdHex}, Org1MSP\\): 3 alive, 1 dead`));
    assert.match(text, /PKI-ID\s+ORG\s+ENDPOINT\s+INTERNAL\s+STATE\s+STARTED \(inc_num\)\s+SEQ\s+SIGNATURE/);
    assert.match(text, new RegExp(`${f2.pkiIdHex.slice(0, 16)}\\s+Org1MSP\\s+-\\s+${f2.endpoint}\\s+alive`));
    assert.match(text, new RegExp(`${f1.pkiIdHex.slice(0, 16)}.*valid \\(responder\\)`));
  });

  it("another org without an external endpoint: the peer closes the connection unanswered; exit 1 naming --external-endpoint", async () => {
    const refusedBefore = f1.stats.requestsRefused;
    // A long --timeout: the closed connection, not the timeout, ends the wait.
    const r = await cli(["members", f1.endpoint, "--identity", org2Dir, "--trust-ca", org1Ca, "--timeout", "600000"], {
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 1, r.stdout);
    assert.match(oneErrorLine(r.stderr), /closed the connection without answering our MembershipRequest.*--external-endpoint/);
    assert.equal(f1.stats.requestsRefused, refusedBefore + 1);
  });

  it("a gossip-connect peer that does not trust our CA: exit 1 naming the refusal and --trust-ca, not --external-endpoint", async () => {
    const peer = await serve(["--identity", org1Dir]);
    try {
      const r = await cli(["members", peer.endpoint, "--identity", org2Dir, "--trust-ca", org1Ca, "--timeout", "600000"], {
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 1, r.stdout);
      const line = oneErrorLine(r.stderr);
      assert.match(line, /MSP "Org2MSP" is not trusted; fix: .*--trust-ca/);
      assert.doesNotMatch(line, /--external-endpoint/);
    } finally {
      await peer.peer.stop("SIGKILL");
    }
  });

  it("another org with --external-endpoint: its own org's members and ours with external endpoints, no internal endpoints", async () => {
    const r = await cli([
      "members",
      f1.endpoint,
      "--identity",
      org2Dir,
      "--trust-ca",
      org1Ca,
      "--external-endpoint",
      "127.0.0.1:9",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const members = lines(r.stdout).slice(0, -1);
    const ids = members.map((m) => m.pkiId).sort();
    assert.deepEqual(ids, [f1.pkiIdHex, g1.pkiIdHex, org2Pki].sort());
    assert.ok(
      members.every((m) => m.internalEndpoint === null && m.signature === "valid"),
      JSON.stringify(members),
    );
    assert.equal(members.find((m) => m.pkiId === g1.pkiIdHex)?.organization, "Org2MSP");
    assert.equal(f1.member(org2Pki)?.endpoint, "127.0.0.1:9");
  });

  it("bad input: missing --identity and a malformed --external-endpoint exit 2", async () => {
    const [noId, badExt, badTimeout] = await Promise.all([
      cli(["members", f1.endpoint]),
      cli(["members", f1.endpoint, "--identity", org1Dir, "--external-endpoint", "nope"]),
      cli(["members", f1.endpoint, "--identity", org1Dir, "--timeout", "0"]),
    ]);
    assert.equal(noId.code, 2);
    assert.match(oneErrorLine(noId.stderr), /missing --identity/);
    assert.equal(badExt.code, 2);
    assert.match(oneErrorLine(badExt.stderr), /--external-endpoint must be HOST:PORT/);
    assert.equal(badTimeout.code, 2);
  });
});
