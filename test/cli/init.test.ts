// `gossip-connect init`, the global help and usage errors, through the real binary.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { cli, oneErrorLine, tempDir } from "./cli-helpers.js";

let tmp: { dir: string; remove: () => void };
before(() => {
  tmp = tempDir("gossip-cli-init-");
});
after(() => tmp?.remove());

describe("gossip-connect (global)", () => {
  it("--help lists every command and exits 0; no command prints usage and exits 2; an unknown command exits 2", async () => {
    const [help, none, unknown, version] = await Promise.all([cli(["--help"]), cli([]), cli(["frobnicate"]), cli(["--version"])]);
    assert.equal(help.code, 0, help.stderr);
    for (const c of ["mesh", "init", "serve", "ping", "probe", "handshake", "send", "members"])
      assert.match(help.stdout, new RegExp(`^  ${c} `, "m"));
    assert.equal(none.code, 2);
    assert.match(none.stderr, /Usage: gossip-connect COMMAND/);
    assert.equal(unknown.code, 2);
    assert.match(oneErrorLine(unknown.stderr), /unknown command "frobnicate"/);
    assert.equal(version.code, 0);
    assert.equal(version.stdout.trim(), JSON.parse(readFileSync("package.json", "utf8")).version);
    assert.match(help.stdout, /'gossip-connect --version' for the version/, "the global help names --version");
  });

  it("every command has --help (exit 0, usage on stdout)", async () => {
    const cmds = ["mesh", "init", "serve", "ping", "probe", "handshake", "send", "members"];
    const results = await Promise.all(cmds.map((c) => cli([c, "--help"])));
    results.forEach((r, i) => {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^Usage: gossip-connect ${cmds[i]}`));
      assert.match(r.stdout, /Exit codes:/);
    });
  });
});

describe("gossip-connect init", () => {
  it("creates a CA, identity and TLS pairs with a manifest; a second init reuses the CA with --ca", async () => {
    const p1 = join(tmp.dir, "p1");
    const p2 = join(tmp.dir, "p2");
    const r1 = await cli(["init", "--msp-id", "Org1MSP", "--out", p1, "--json"]);
    assert.equal(r1.code, 0, r1.stderr);
    const res1 = JSON.parse(r1.stdout) as Record<string, unknown>;
    assert.equal(res1.result, "created");
    assert.equal(res1.mspId, "Org1MSP");
    assert.match(String(res1.pkiId), /^[0-9a-f]{64}$/);
    const manifest = JSON.parse(readFileSync(join(p1, "identity.json"), "utf8")) as {
      mspId: string;
      pkiId: string;
      files: Record<string, string>;
    };
    assert.equal(manifest.mspId, "Org1MSP");
    assert.equal(manifest.pkiId, res1.pkiId);
    assert.deepEqual(Object.keys(manifest.files).sort(), [
      "caCert",
      "caKey",
      "identityCert",
      "identityKey",
      "tlsClientCert",
      "tlsClientKey",
      "tlsServerCert",
      "tlsServerKey",
    ]);
    for (const [key, file] of Object.entries(manifest.files)) {
      const path = join(p1, file);
      assert.ok(existsSync(path), path);
      if (key.endsWith("Key")) assert.equal(statSync(path).mode & 0o777, 0o600, `${file} mode`);
    }
    const ca = new X509Certificate(readFileSync(join(p1, manifest.files.caCert as string)));
    const tls = new X509Certificate(readFileSync(join(p1, manifest.files.tlsServerCert as string)));
    assert.ok(tls.checkIssued(ca));
    assert.match(tls.subjectAltName ?? "", /DNS:localhost/);
    assert.match(tls.subjectAltName ?? "", /IP Address:127\.0\.0\.1/);

    const r2 = await cli(["init", "--msp-id", "Org1MSP", "--out", p2, "--ca", p1]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stdout, /^created\n/);
    const m2 = JSON.parse(readFileSync(join(p2, "identity.json"), "utf8")) as { files: Record<string, string> };
    assert.equal(m2.files.caKey, undefined, "a reused CA's key is not copied");
    assert.equal(readFileSync(join(p2, "ca-cert.pem"), "utf8"), readFileSync(join(p1, "ca-cert.pem"), "utf8"));
    const id2 = new X509Certificate(readFileSync(join(p2, "identity-cert.pem")));
    assert.ok(id2.checkIssued(ca));

    // Every identity has its own subject, named after its directory (cryptogen's peer0.org1.example.com).
    assert.equal(res1.subject, "O=Org1MSP, OU=peer, CN=p1.org1msp");
    const id1 = new X509Certificate(readFileSync(join(p1, manifest.files.identityCert as string)));
    assert.equal(id1.subject, "O=Org1MSP\nOU=peer\nCN=p1.org1msp");
    assert.equal(tls.subject, "O=Org1MSP\nCN=p1.org1msp");
    assert.equal(id2.subject, "O=Org1MSP\nOU=peer\nCN=p2.org1msp");
    assert.match(r2.stdout, /subject\s+O=Org1MSP, OU=peer, CN=p2\.org1msp/);

    // Refuses to overwrite; refuses a --ca without a CA key.
    const again = await cli(["init", "--msp-id", "Org1MSP", "--out", p1]);
    assert.equal(again.code, 1);
    assert.match(oneErrorLine(again.stderr), /already exists/);
    const noKey = await cli(["init", "--msp-id", "Org1MSP", "--out", join(tmp.dir, "p3"), "--ca", p2]);
    assert.equal(noKey.code, 1);
    assert.match(oneErrorLine(noKey.stderr), /holds no CA key/);
    assert.equal(existsSync(join(tmp.dir, "p3")), false, "nothing written on failure");
  });

  it("--name sets the CN of every certificate (a bad one is a usage error); without it a directory name a CN cannot carry is cleaned up", async () => {
    const named = join(tmp.dir, "n1");
    const odd = join(tmp.dir, "My Peer #2");
    const notHost = join(tmp.dir, "n3");
    const [r1, r2, r3] = await Promise.all([
      cli(["init", "--msp-id", "Org1MSP", "--out", named, "--name", "peer0.org1.example.com", "--json"]),
      cli(["init", "--msp-id", "Org1MSP", "--out", odd, "--json"]),
      cli(["init", "--msp-id", "Org1MSP", "--out", notHost, "--name", "peer_1..org1", "--json"]),
    ]);
    // A name a CN carries but a host name cannot: the CN, not a SAN.
    assert.equal(r3.code, 0, r3.stderr);
    assert.equal((JSON.parse(r3.stdout) as { subject: string }).subject, "O=Org1MSP, OU=peer, CN=peer_1..org1");
    assert.doesNotMatch(new X509Certificate(readFileSync(join(notHost, "tls-server-cert.pem"))).subjectAltName ?? "", /peer_1/);
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal((JSON.parse(r1.stdout) as { subject: string }).subject, "O=Org1MSP, OU=peer, CN=peer0.org1.example.com");
    for (const file of ["tls-server-cert.pem", "tls-client-cert.pem"]) {
      const cert = new X509Certificate(readFileSync(join(named, file)));
      assert.equal(cert.subject, "O=Org1MSP\nCN=peer0.org1.example.com", file);
      // --name is the peer's host name: a SAN of its TLS certificates (cryptogen's CN is), beside the usual ones.
      assert.equal(cert.checkHost("peer0.org1.example.com"), "peer0.org1.example.com", `${file} SANs: ${cert.subjectAltName}`);
      assert.match(cert.subjectAltName ?? "", /DNS:localhost/);
    }
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal((JSON.parse(r2.stdout) as { subject: string }).subject, "O=Org1MSP, OU=peer, CN=my-peer-2.org1msp");
    // The default name is not a host name: not a SAN.
    assert.doesNotMatch(new X509Certificate(readFileSync(join(odd, "tls-server-cert.pem"))).subjectAltName ?? "", /my-peer-2/);

    // A --name a CN cannot carry is a usage error (exit 2), and nothing is written.
    const bad = join(tmp.dir, "bad-name");
    const refused = await Promise.all(
      ["peer 0", "p".repeat(65)].map((name) => cli(["init", "--msp-id", "Org1MSP", "--out", bad, "--name", name])),
    );
    for (const r of refused) {
      assert.equal(r.code, 2, r.stderr);
      assert.match(oneErrorLine(r.stderr), /--name must be 1 to 64 letters/);
    }
    assert.equal(existsSync(bad), false);
  });

  it("usage errors exit 2 with one line: unknown flag, missing --msp-id, missing value, bad MSP ID, stray argument", async () => {
    const out = join(tmp.dir, "never");
    const cases: [string[], RegExp][] = [
      [["init", "--msp-id", "Org1MSP", "--out", out, "--bogus"], /unknown option --bogus/],
      [["init", "--out", out], /missing --msp-id/],
      [["init", "--msp-id", "Org1MSP"], /missing --out/],
      [["init", "--msp-id"], /--msp-id needs a value/],
      [["init", "--msp-id", "Org 1", "--out", out], /--msp-id must be/],
      [["init", "--msp-id", "Org1MSP", "--out", out, "extra"], /unexpected argument "extra"/],
      [["init", "--msp-id", "Org1MSP", "--out", out, "--json=yes"], /--json takes no value/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args)));
    results.forEach((r, i) => {
      assert.equal(r.code, 2, `${cases[i]?.[0].join(" ")}: ${r.stderr}`);
      assert.match(oneErrorLine(r.stderr), cases[i]?.[1] as RegExp);
    });
    assert.equal(existsSync(out), false);
  });

  it("an unreadable --ca exits 1 naming the file; a --ca whose certificate does not match its key exits 1", async () => {
    const missing = await cli(["init", "--msp-id", "Org1MSP", "--out", join(tmp.dir, "x"), "--ca", join(tmp.dir, "nope")]);
    assert.equal(missing.code, 1);
    assert.match(oneErrorLine(missing.stderr), /--ca .*nope is not a directory/);

    const a = join(tmp.dir, "ca-a");
    const b = join(tmp.dir, "ca-b");
    await Promise.all([cli(["init", "--msp-id", "OrgA", "--out", a]), cli(["init", "--msp-id", "OrgB", "--out", b])]);
    writeFileSync(join(a, "ca-key.pem"), readFileSync(join(b, "ca-key.pem")));
    const mismatch = await cli(["init", "--msp-id", "OrgA", "--out", join(tmp.dir, "y"), "--ca", a]);
    assert.equal(mismatch.code, 1);
    assert.match(oneErrorLine(mismatch.stderr), /does not match its key/);
  });
});
