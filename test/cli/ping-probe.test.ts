// ping and probe through the real binary, against peers run by `gossip-connect serve`,
// with every bad input and exit code.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { cli, oneErrorLine, type Running, serve } from "./cli-helpers.js";
import { type Identities, makeIdentities } from "./fixtures.js";

let ids: Identities;
/** p1, TLS, --auto-ack. */
let acking: { peer: Running; endpoint: string; pkiId: string };
/** ephemeral identity, h2c. */
let dev: { peer: Running; endpoint: string; pkiId: string };

before(async () => {
  ids = await makeIdentities("gossip-cli-ping-");
  [acking, dev] = await Promise.all([serve(["--identity", ids.p1, "--auto-ack"]), serve(["--no-tls"])]);
});

after(async () => {
  await Promise.all([acking, dev].filter((p) => p !== undefined).map((p) => p.peer.stop("SIGKILL")));
  ids?.remove();
});

const json = (stdout: string): Record<string, unknown> => JSON.parse(stdout.trim().split("\n").at(-1) as string) as Record<string, unknown>;

describe("ping", () => {
  it("answers over TLS (trusting the CA) and h2c (http:// or --no-tls); prints the server certificate subject", async () => {
    const [tls, h2c, bare, barePath] = await Promise.all([
      cli(["ping", `https://${acking.endpoint}`, "--trust-ca", ids.org1Ca, "--json"]),
      cli(["ping", `http://${dev.endpoint}/gossip.Gossip/Ping`]),
      cli(["ping", dev.endpoint, "--no-tls", "--json"]),
      cli(["ping", `${dev.endpoint}/gossip.Gossip/Ping`, "--no-tls"]),
    ]);
    assert.equal(tls.code, 0, tls.stderr);
    const r = json(tls.stdout);
    assert.equal(r.result, "pong");
    assert.equal(r.tls, true);
    assert.equal(r.serverSubject, "O=Org1MSP, CN=p1.org1msp");
    assert.equal(typeof r.ms, "number");
    assert.equal(h2c.code, 0, h2c.stderr);
    assert.match(h2c.stdout, /^pong\n/);
    assert.equal(bare.code, 0, bare.stderr);
    assert.equal(json(bare.stdout).tls, false);
    assert.equal(barePath.code, 0, `HOST:PORT takes the Ping path too, as the help says: ${barePath.stderr}`);
  });

  it("fails with exit 1 and a fix: untrusted TLS, h2c against TLS, nobody listening; exit 2 for a bad URL", async () => {
    const [untrusted, wrongProto, nobody, badUrl, contradiction] = await Promise.all([
      cli(["ping", `https://${acking.endpoint}`]),
      cli(["ping", `http://${acking.endpoint}`]),
      cli(["ping", "http://127.0.0.1:1", "--json"]),
      cli(["ping", "ftp://x"]),
      cli(["ping", `https://${acking.endpoint}`, "--no-tls"]),
    ]);
    assert.equal(untrusted.code, 1);
    assert.match(oneErrorLine(untrusted.stderr), /TLS handshake with .* failed.*; fix: pass the CA .* --trust-ca FILE/);
    assert.equal(wrongProto.code, 1);
    assert.match(oneErrorLine(wrongProto.stderr), /cannot connect .*; fix: .*if the peer serves TLS, use https:\/\//);
    assert.equal(nobody.code, 1);
    assert.match(oneErrorLine(nobody.stderr), /ECONNREFUSED/);
    assert.deepEqual(
      { result: json(nobody.stdout).result, code: json(nobody.stdout).code, exitCode: json(nobody.stdout).exitCode },
      { result: "error", code: "dial_failed", exitCode: 1 },
    );
    assert.equal(badUrl.code, 2);
    assert.match(oneErrorLine(badUrl.stderr), /URL must be HOST:PORT/);
    assert.equal(contradiction.code, 2);
    assert.match(oneErrorLine(contradiction.stderr), /--no-tls contradicts an https:\/\/ URL/);
  });
});

describe("probe", () => {
  it("exit 0 for a live peer (TLS and h2c), 1 for a dead one", async () => {
    const [live, liveH2c, dead] = await Promise.all([
      cli(["probe", acking.endpoint, "--trust-ca", ids.org1Ca, "--json"]),
      cli(["probe", dev.endpoint, "--no-tls"]),
      cli(["probe", "127.0.0.1:1", "--no-tls"]),
    ]);
    assert.equal(live.code, 0, live.stderr);
    assert.equal(json(live.stdout).result, "alive");
    assert.equal(liveH2c.code, 0, liveH2c.stderr);
    assert.equal(dead.code, 1);
    assert.match(oneErrorLine(dead.stderr), /dial 127\.0\.0\.1:1 failed/);
  });
});
