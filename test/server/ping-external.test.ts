// Ping from outside, with the real tools a user pastes from the README:
// curl over h2c and TLS, and `buf curl` over gRPC using server reflection
// (no --schema), v1 and v1alpha.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { onPath, run, skipWithoutCurl } from "../helpers/exec.js";
import { startPeer, type TestPeer } from "../helpers/peers.js";

const buf = join(process.cwd(), "node_modules", ".bin", "buf");
let h2c: TestPeer;
let tlsPeer: TestPeer;
let noReflection: TestPeer;
let dir: string;
let pem: { ca: string; cert: string; key: string };

before(async () => {
  h2c = await startPeer({ tls: false });
  tlsPeer = await startPeer({ tls: true });
  noReflection = await startPeer({ tls: false, plugin: { reflection: false } });
  dir = mkdtempSync(join(tmpdir(), "gossip-ping-"));
  pem = { ca: join(dir, "ca.pem"), cert: join(dir, "client.pem"), key: join(dir, "client.key") };
  writeFileSync(pem.ca, tlsPeer.material.ca.certPem);
  writeFileSync(pem.cert, tlsPeer.material.tlsClient.certPem);
  writeFileSync(pem.key, tlsPeer.material.tlsClient.keyPem);
});

after(async () => {
  await h2c?.close();
  await tlsPeer?.close();
  await noReflection?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Splits curl's output produced with `-w '\n%{http_code} %{http_version}'`. */
function curlOut(stdout: string): { body: string; status: string; version: string } {
  const i = stdout.lastIndexOf("\n");
  const [status = "", version = ""] = stdout.slice(i + 1).split(" ");
  return { body: stdout.slice(0, i), status, version };
}

describe("curl", { skip: skipWithoutCurl }, () => {
  it("h2c prior knowledge: POST /gossip.Gossip/Ping with {} answers {} over HTTP/2", async () => {
    const r = await run("curl", [
      "-sS",
      "--http2-prior-knowledge",
      "-H",
      "Content-Type: application/json",
      "-d",
      "{}",
      "-w",
      "\n%{http_code} %{http_version}",
      `http://${h2c.endpoint}/gossip.Gossip/Ping`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(curlOut(r.stdout), { body: "{}", status: "200", version: "2" });
  });

  it("TLS with --cacert/--cert/--key answers {} over HTTP/2", async () => {
    const r = await run("curl", [
      "-sS",
      "--cacert",
      pem.ca,
      "--cert",
      pem.cert,
      "--key",
      pem.key,
      "-H",
      "Content-Type: application/json",
      "-d",
      "{}",
      "-w",
      "\n%{http_code} %{http_version}",
      `https://${tlsPeer.endpoint}/gossip.Gossip/Ping`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(curlOut(r.stdout), { body: "{}", status: "200", version: "2" });
  });

  it("TLS without trusting the CA fails (control: --cacert above is what made it work)", async () => {
    const r = await run("curl", [
      "-sS",
      "-H",
      "Content-Type: application/json",
      "-d",
      "{}",
      `https://${tlsPeer.endpoint}/gossip.Gossip/Ping`,
    ]);
    assert.notEqual(r.code, 0);
    assert.notEqual(r.stdout, "{}");
  });
});

describe("buf curl (gRPC, schema from server reflection)", () => {
  const grpcH2c = ["curl", "--protocol", "grpc", "--http2-prior-knowledge"];

  it("Ping works without --schema", async () => {
    const r = await run(buf, [...grpcH2c, "-d", "{}", `http://${h2c.endpoint}/gossip.Gossip/Ping`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "{}");
  });

  it("Ping works over TLS with a client certificate", async () => {
    const r = await run(buf, [
      "curl",
      "--protocol",
      "grpc",
      "--cacert",
      pem.ca,
      "--cert",
      pem.cert,
      "--key",
      pem.key,
      "-d",
      "{}",
      `https://${tlsPeer.endpoint}/gossip.Gossip/Ping`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "{}");
  });

  it("--list-services lists gossip.Gossip and both reflection services", async () => {
    const r = await run(buf, [...grpcH2c, "--list-services", `http://${h2c.endpoint}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n").sort(), [
      "gossip.Gossip",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);
  });

  it("--list-methods describes the Gossip service from reflection", async () => {
    const r = await run(buf, [...grpcH2c, "--list-methods", `http://${h2c.endpoint}`]);
    assert.equal(r.code, 0, r.stderr);
    const methods = r.stdout.trim().split("\n");
    assert.ok(methods.includes("gossip.Gossip/Ping"), r.stdout);
    assert.ok(methods.includes("gossip.Gossip/GossipStream"), r.stdout);
  });

  it("--reflect-protocol grpc-v1alpha: --list-services and Ping work too", async () => {
    const list = await run(buf, [...grpcH2c, "--reflect-protocol", "grpc-v1alpha", "--list-services", `http://${h2c.endpoint}`]);
    assert.equal(list.code, 0, list.stderr);
    assert.ok(list.stdout.split("\n").includes("gossip.Gossip"), list.stdout);
    const ping = await run(buf, [
      ...grpcH2c,
      "--reflect-protocol",
      "grpc-v1alpha",
      "-d",
      "{}",
      `http://${h2c.endpoint}/gossip.Gossip/Ping`,
    ]);
    assert.equal(ping.code, 0, ping.stderr);
    assert.equal(ping.stdout.trim(), "{}");
  });

  it("control: with reflection off (plugin reflection: false), Ping without --schema fails", async () => {
    const r = await run(buf, [...grpcH2c, "-d", "{}", `http://${noReflection.endpoint}/gossip.Gossip/Ping`]);
    assert.notEqual(r.code, 0);
    assert.notEqual(r.stdout.trim(), "{}");
  });
});

describe("grpcurl", async () => {
  // grpcurl is not packaged for Debian and cannot be installed on this machine;
  // this runs only where it is on PATH (it is never faked).
  const present = await onPath("grpcurl");
  const skip = present ? false : "grpcurl is not installed here (not in Debian; not installable on this machine)";

  it("grpcurl -plaintext list and Ping work through reflection", { skip }, async () => {
    const list = await run("grpcurl", ["-plaintext", h2c.endpoint, "list"]);
    assert.equal(list.code, 0, list.stderr);
    assert.ok(list.stdout.split("\n").includes("gossip.Gossip"), list.stdout);
    const ping = await run("grpcurl", ["-plaintext", "-d", "{}", h2c.endpoint, "gossip.Gossip/Ping"]);
    assert.equal(ping.code, 0, ping.stderr);
    assert.equal(ping.stdout.trim(), "{}");
  });
});
