// handshake and send through the real binary, against peers run by `gossip-connect serve`,
// with every bad input and exit code.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseGossipMessage } from "../../src/core/envelope.js";
import { checkTag } from "../../src/core/tags.js";
import { createPeerMaterial } from "../../src/pki/certificates.js";
import { ForeignPeer } from "../helpers/foreign-peer.js";
import { caFor } from "../helpers/peers.js";
import { cli, oneErrorLine, type Running, serve } from "./cli-helpers.js";
import { type Identities, makeIdentities } from "./fixtures.js";

let ids: Identities;
/** p1, TLS, --auto-ack. */
let acking: { peer: Running; endpoint: string; pkiId: string };
/** p3, TLS, no acks. */
let silent: { peer: Running; endpoint: string; pkiId: string };
/** ephemeral identity, h2c. */
let dev: { peer: Running; endpoint: string; pkiId: string };

before(async () => {
  ids = await makeIdentities("gossip-cli-send-");
  [acking, silent, dev] = await Promise.all([
    serve(["--identity", ids.p1, "--auto-ack"]),
    serve(["--identity", ids.p3]),
    serve(["--no-tls"]),
  ]);
});

after(async () => {
  await Promise.all([acking, silent, dev].filter((p) => p !== undefined).map((p) => p.peer.stop("SIGKILL")));
  ids?.remove();
});

const json = (stdout: string): Record<string, unknown> => JSON.parse(stdout.trim().split("\n").at(-1) as string) as Record<string, unknown>;

describe("handshake", () => {
  it("prints the remote's PKI-ID, MSP ID and certificate subject; --pki-id must match", async () => {
    const [ok, expected, other] = await Promise.all([
      cli(["handshake", acking.endpoint, "--identity", ids.p2, "--json"]),
      cli(["handshake", acking.endpoint, "--identity", ids.p2, "--pki-id", acking.pkiId]),
      cli(["handshake", acking.endpoint, "--identity", ids.p2, "--pki-id", silent.pkiId]),
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const r = json(ok.stdout);
    assert.deepEqual(
      { result: r.result, pkiId: r.pkiId, mspId: r.mspId, subject: r.subject },
      { result: "authenticated", pkiId: acking.pkiId, mspId: "Org1MSP", subject: "O=Org1MSP, OU=peer, CN=p1.org1msp" },
    );
    assert.equal(expected.code, 0, expected.stderr);
    assert.match(expected.stdout, new RegExp(`pkiId\\s+${acking.pkiId}`));
    assert.equal(other.code, 1);
    assert.match(oneErrorLine(other.stderr), /answered with another PKI-ID than --pki-id/);
  });

  it("bad input: invalid PKI-ID hex and missing --identity exit 2; another organization's untrusted TLS exits 1", async () => {
    const [badHex, shortHex, noId, org2] = await Promise.all([
      cli(["handshake", acking.endpoint, "--identity", ids.p2, "--pki-id", "zz".repeat(32)]),
      cli(["handshake", acking.endpoint, "--identity", ids.p2, "--pki-id", "abcd"]),
      cli(["handshake", acking.endpoint]),
      cli(["handshake", acking.endpoint, "--identity", ids.q1]),
    ]);
    assert.equal(badHex.code, 2);
    assert.match(oneErrorLine(badHex.stderr), /--pki-id must be 64 hex characters/);
    assert.equal(shortHex.code, 2);
    assert.match(oneErrorLine(shortHex.stderr), /\(4 characters\)/);
    assert.equal(noId.code, 2);
    assert.match(oneErrorLine(noId.stderr), /missing --identity DIR; fix: create one with 'gossip-connect init/);
    assert.equal(org2.code, 1);
    assert.match(oneErrorLine(org2.stderr), /TLS handshake .* failed.*--trust-ca/);
  });
});

describe("send", () => {
  it("--ack --count 3: every message acknowledged (exit 0), Fabric's aggregated summary", async () => {
    const r = await cli([
      "send",
      acking.endpoint,
      "--identity",
      ids.p2,
      "--data",
      "hello",
      "--count",
      "3",
      "--ack",
      "--timeout",
      "3000",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const res = json(r.stdout);
    assert.deepEqual(
      { result: res.result, pkiId: res.pkiId, successes: res.successes, failed: res.failed, ok: res.ok, summary: res.summary },
      { result: "acknowledged", pkiId: acking.pkiId, successes: 3, failed: 0, ok: true, summary: '{"successes":3}' },
    );
  });

  it("without --ack: sent with exact nonces (decimal strings), --pki-id checked", async () => {
    const r = await cli([
      "send",
      acking.endpoint,
      "--identity",
      ids.p2,
      "--nonce",
      "0xfffffffffffffffe",
      "--count",
      "2",
      "--pki-id",
      acking.pkiId,
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const res = json(r.stdout);
    assert.deepEqual(
      { result: res.result, count: res.count, firstNonce: res.firstNonce, lastNonce: res.lastNonce },
      { result: "sent", count: 2, firstNonce: "18446744073709551614", lastNonce: "18446744073709551615" },
    );
    const p2 = JSON.parse(readFileSync(join(ids.p2, "identity.json"), "utf8")) as { pkiId: string };
    await acking.peer.waitForEvent("received", (e) => e.from === p2.pkiId && e.nonce === "18446744073709551615");
  });

  it("a missing ack exits 1 and still prints the aggregated result", async () => {
    const r = await cli(["send", silent.endpoint, "--identity", ids.p2, "--ack", "--timeout", "300", "--json"]);
    assert.equal(r.code, 1);
    const res = json(r.stdout);
    assert.deepEqual(
      { ok: res.ok, successes: res.successes, summary: res.summary },
      { ok: false, successes: 0, summary: '{"failures":{"timed out":1}}' },
    );
    assert.match(oneErrorLine(r.stderr), /no acknowledgement from .* within 300 ms; fix: serve the remote with --auto-ack/);
  });

  it("refusals exit 1: the remote does not trust us; we do not trust the remote; nobody listening", async () => {
    const [refusedByRemote, untrustedRemote, nobody] = await Promise.all([
      cli(["send", acking.endpoint, "--identity", ids.q1, "--trust-ca", ids.org1Ca]),
      cli(["send", dev.endpoint, "--identity", ids.p2, "--no-tls"]),
      cli(["send", "127.0.0.1:1", "--identity", ids.p2, "--ack"]),
    ]);
    assert.equal(refusedByRemote.code, 1);
    assert.match(oneErrorLine(refusedByRemote.stderr), /MSP "Org2MSP" is not trusted; fix: the peer probably refused our identity/);
    assert.equal(untrustedRemote.code, 1);
    assert.match(oneErrorLine(untrustedRemote.stderr), /the identity of .* is not trusted: MSP "DevMSP" is not trusted; fix: pass the CA/);
    assert.equal(nobody.code, 1);
    assert.match(oneErrorLine(nobody.stderr), /ECONNREFUSED/);
  });

  it("usage errors exit 2: nonce out of range, --nonce with --ack, --timeout without --ack, --count 0, nonce overflow", async () => {
    const base = ["send", acking.endpoint, "--identity", ids.p2];
    const cases: [string[], RegExp][] = [
      [[...base, "--nonce", "18446744073709551616"], /--nonce must be an unsigned 64-bit integer/],
      [[...base, "--nonce", "-1"], /--nonce must be an unsigned 64-bit integer .*got "-1"/],
      [[...base, "--nonce", "1.5"], /--nonce must be an unsigned 64-bit integer/],
      [[...base, "--nonce", "1", "--ack"], /--nonce cannot be combined with --ack/],
      [[...base, "--timeout", "100"], /--timeout applies only with --ack/],
      [[...base, "--count", "0"], /--count must be an integer from 1/],
      [[...base, "--nonce", "18446744073709551615", "--count", "2"], /runs past the largest 64-bit nonce/],
      [["send", "--identity", ids.p2], /missing HOST:PORT/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args)));
    results.forEach((r, i) => {
      assert.equal(r.code, 2, `${cases[i]?.[0].join(" ")}: ${r.stderr}`);
      assert.match(oneErrorLine(r.stderr), cases[i]?.[1] as RegExp);
    });
  });
});

describe('send to a Fabric-style peer (grpc-js) that answers our half-close with UNKNOWN "EOF" and checks tags, as Fabric v2.4 does', () => {
  /** A foreign peer of "ForeignMSP" that trusts Org1MSP (the CLI's p2) and whose CA file the CLI can trust. */
  async function fabricLike(refuseAll?: string): Promise<{ peer: ForeignPeer; caFile: string }> {
    const ca = caFor("ForeignMSP");
    const material = createPeerMaterial({ mspId: "ForeignMSP", ca, commonName: "foreign.fabric" });
    const org1 = readFileSync(ids.org1Ca, "utf8");
    const peer = await ForeignPeer.start({
      mspId: "ForeignMSP",
      identityCert: material.identity.certPem,
      identityKey: material.identity.keyPem,
      tls: { cert: material.tlsServer.certPem, key: material.tlsServer.keyPem, ca: [ca.certPem, org1] },
      trustedRoots: { ForeignMSP: [ca.certPem], Org1MSP: [org1] },
      fabricEof: true,
      refuseAll,
    });
    const caFile = join(ids.dir, "foreign-ca.pem");
    writeFileSync(caFile, ca.certPem);
    return { peer, caFile };
  }

  it("without --ack: every message delivered with a legal tag, and exit 0 (the EOF after our graceful end is a normal close)", async () => {
    const { peer, caFile } = await fabricLike();
    try {
      const r = await cli([
        "send",
        peer.endpoint,
        "--identity",
        ids.p2,
        "--trust-ca",
        caFile,
        "--pki-id",
        peer.pkiId.toString("hex"),
        "--nonce",
        "7",
        "--count",
        "3",
        "--json",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(json(r.stdout).result, "sent");
      await peer.waitFor(() => peer.received.filter((m) => m.contentField === 8).length === 3, 5000);
      const data = peer.received.filter((m) => m.contentField === 8);
      assert.deepEqual(
        data.map((m) => m.nonce),
        [7n, 8n, 9n],
      );
      // Fabric's gossip layer drops a data message not tagged CHAN_AND_ORG ("Undefined tag").
      for (const m of data) assert.equal(checkTag(parseGossipMessage(m.payload)), undefined);
    } finally {
      await peer.close();
    }
  });

  it("a refusal of our identity still exits 1", async () => {
    const { peer, caFile } = await fabricLike("authentication failure");
    try {
      const r = await cli(["send", peer.endpoint, "--identity", ids.p2, "--trust-ca", caFile, "--nonce", "1"]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(oneErrorLine(r.stderr), /closed \(remote\): remote ended the stream with gRPC status 2: authentication failure/);
    } finally {
      await peer.close();
    }
  });
});
