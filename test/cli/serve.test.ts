// `gossip-connect serve` through the real binary: JSON events, auto-ack, bootstrap,
// the ephemeral identity, metrics, signals, and every bad input with its exit code.
import assert from "node:assert/strict";
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http2 from "node:http2";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { cli, holdPort, oneErrorLine, type Running, serve, start } from "./cli-helpers.js";
import { type Identities, makeIdentities } from "./fixtures.js";

let ids: Identities;
const running: Running[] = [];

before(async () => {
  ids = await makeIdentities("gossip-cli-serve-");
});

after(async () => {
  await Promise.all(running.map((r) => r.stop("SIGKILL")));
  ids?.remove();
});

async function h2get(url: string): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  const session = http2.connect(u.origin);
  try {
    return await new Promise((resolve, reject) => {
      session.once("error", reject);
      const req = session.request({ ":method": "GET", ":path": u.pathname });
      let status = 0;
      let body = "";
      req.setEncoding("utf8");
      req.on("response", (h) => {
        status = Number(h[":status"]);
      });
      req.on("data", (c: string) => {
        body += c;
      });
      req.on("end", () => resolve({ status, body }));
      req.on("error", reject);
      req.end();
    });
  } finally {
    session.close();
  }
}

describe("serve", () => {
  it("prints JSON events: started, connected, received (exact 64-bit nonces), disconnected; --auto-ack acks; SIGTERM stops it (exit 0)", async () => {
    const a = await serve(["--identity", ids.p1, "--auto-ack"]);
    running.push(a.peer);
    const manifest = JSON.parse(readFileSync(join(ids.p1, "identity.json"), "utf8")) as { pkiId: string };
    const started = a.peer.json()[0] as Record<string, unknown>;
    assert.equal(started.event, "started");
    assert.equal(started.pkiId, manifest.pkiId);
    assert.equal(started.mspId, "Org1MSP");
    assert.equal(started.tls, true);
    assert.equal(started.ephemeral, false);
    assert.match(String(started.time), /^\d{4}-\d\d-\d\dT/);

    const acked = await cli(["send", a.endpoint, "--identity", ids.p2, "--data", "hi", "--count", "2", "--ack", "--json"]);
    assert.equal(acked.code, 0, acked.stderr);
    const plain = await cli([
      "send",
      a.endpoint,
      "--identity",
      ids.p2,
      "--nonce",
      "18446744073709551614",
      "--count",
      "2",
      "--data",
      "hello",
    ]);
    assert.equal(plain.code, 0, plain.stderr);

    const p2 = JSON.parse(readFileSync(join(ids.p2, "identity.json"), "utf8")) as { pkiId: string };
    const last = await a.peer.waitForEvent("received", (e) => e.nonce === "18446744073709551615");
    assert.deepEqual(
      { from: last.from, contentType: last.contentType, payloadSize: last.payloadSize, signed: last.signed },
      { from: p2.pkiId, contentType: "dataMsg", payloadSize: 26, signed: false }, // 26: nonce, tag CHAN_AND_ORG, data_msg with "hello"
    );
    await a.peer.waitForEvent("disconnected", (e) => e.pkiId === p2.pkiId);
    const events = a.peer.json();
    const received = events.filter((e) => e.event === "received");
    assert.equal(received.length, 4);
    for (const e of received) assert.equal(typeof e.nonce, "string");
    assert.ok(received.some((e) => e.nonce === "18446744073709551614"));
    const connected = events.filter((e) => e.event === "connected");
    assert.equal(connected.length, 2);
    assert.deepEqual(new Set(connected.map((e) => e.direction)), new Set(["inbound"]));

    const stopped = await a.peer.stop("SIGTERM");
    assert.equal(stopped.code, 0, a.peer.stderr);
    assert.ok(stopped.tookMs < 5000, `took ${stopped.tookMs} ms`);
    assert.equal(a.peer.json().at(-1)?.event, "stopped");
    // Logs are pino JSON on stderr, never on stdout.
    assert.match(a.peer.stderr, /"msg":"Server listening at https:\/\/127\.0\.0\.1:/);
    for (const l of a.peer.lines.filter((x) => x !== "")) assert.ok("event" in (JSON.parse(l) as object), l);
  });

  it("--bootstrap joins the membership: joined, died and revived events; 'members' lists both; no received events for membership traffic", async () => {
    const fast = ["--alive-interval", "200", "--alive-expiration", "1000"];
    const a = await serve(["--identity", ids.p1, ...fast]);
    running.push(a.peer);
    const b = await serve(["--identity", ids.p2, "--bootstrap", a.endpoint, ...fast]);
    running.push(b.peer);
    const started = b.peer.json()[0] as Record<string, unknown>;
    assert.deepEqual(
      { internal: started.internalEndpoint, bootstrap: started.bootstrap },
      { internal: b.endpoint, bootstrap: [a.endpoint] },
    );
    const joined = await a.peer.waitForEvent("joined", (e) => e.pkiId === b.pkiId, 10_000);
    assert.deepEqual(
      { organization: joined.organization, endpoint: joined.endpoint, internalEndpoint: joined.internalEndpoint },
      { organization: "Org1MSP", endpoint: "", internalEndpoint: b.endpoint },
    );
    await b.peer.waitForEvent("joined", (e) => e.pkiId === a.pkiId, 10_000);

    const members = await cli(["members", a.endpoint, "--identity", ids.p3, "--json"]);
    assert.equal(members.code, 0, members.stderr);
    const rows = members.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const alive = rows.filter((r) => r.result === "member" && r.state === "alive");
    assert.ok(
      alive.some((r) => r.pkiId === b.pkiId && r.internalEndpoint === b.endpoint && r.signature === "valid"),
      members.stdout,
    );
    assert.deepEqual(alive.at(-1)?.pkiId, a.pkiId);

    // b leaves: presumed dead; b comes back (same identity and port, newer inc_num): revived.
    assert.equal((await b.peer.stop("SIGINT")).code, 0, b.peer.stderr);
    const died = await a.peer.waitForEvent("died", (e) => e.pkiId === b.pkiId, 10_000);
    const b2 = start(["serve", "--listen", b.endpoint, "--json", "--identity", ids.p2, "--bootstrap", a.endpoint, ...fast]);
    running.push(b2);
    const revived = await a.peer.waitForEvent("revived", (e) => e.pkiId === b.pkiId, 15_000);
    assert.ok(BigInt(String(revived.incNum)) > BigInt(String(died.incNum)), `${revived.incNum} > ${died.incNum}`);
    assert.equal((await b2.stop("SIGINT")).code, 0, b2.stderr);
    assert.equal((await a.peer.stop()).code, 0);
    assert.ok(!a.peer.json().some((e) => e.event === "received"), "membership traffic is not reported as received messages");
  });

  it("across orgs: --anchor and --external-endpoint make two orgs' peers list each other; 'members' from the other org needs --external-endpoint", async () => {
    const fast = ["--alive-interval", "200", "--alive-expiration", "1000"];
    const ports = await Promise.all([holdPort(), holdPort()]);
    const [pa, pq] = ports.map((h) => h.port);
    await Promise.all(ports.map((h) => h.close()));
    // serve() listens on port 0; here the external endpoint must name the port, so it is fixed.
    const serveAt = async (port: number | undefined, args: string[]) => {
      const peer = start(["serve", "--listen", `127.0.0.1:${port}`, "--json", "--external-endpoint", `127.0.0.1:${port}`, ...args]);
      running.push(peer);
      const started = await peer.waitForEvent("started");
      return { peer, endpoint: String(started.endpoint), pkiId: String(started.pkiId) };
    };
    const a = await serveAt(pa, ["--identity", ids.p1, "--trust-ca", ids.org2Ca, ...fast]);
    // The channel config names the anchor's organization: @Org1MSP.
    const q = await serveAt(pq, ["--identity", ids.q1, "--trust-ca", ids.org1Ca, "--anchor", `${a.endpoint}@Org1MSP`, ...fast]);
    const seen = await a.peer.waitForEvent("joined", (e) => e.pkiId === q.pkiId, 10_000);
    assert.deepEqual(
      { organization: seen.organization, endpoint: seen.endpoint, internalEndpoint: seen.internalEndpoint },
      { organization: "Org2MSP", endpoint: `127.0.0.1:${pq}`, internalEndpoint: "" },
    );
    await q.peer.waitForEvent("joined", (e) => e.pkiId === a.pkiId && e.organization === "Org1MSP", 10_000);

    // One after the other: both use q1's identity, and a peer keeps one
    // connection per PKI-ID (Fabric's comm), so a second one at the same time
    // replaces the first, and the refusal closes q1's connection whichever it is.
    const refused = await cli(["members", a.endpoint, "--identity", ids.q1, "--trust-ca", ids.org1Ca]);
    const answered = await cli([
      "members",
      a.endpoint,
      "--identity",
      ids.q1,
      "--trust-ca",
      ids.org1Ca,
      "--external-endpoint",
      "127.0.0.1:9",
      "--json",
    ]);
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(oneErrorLine(refused.stderr), /closed the connection without answering.*--external-endpoint/);
    assert.equal(answered.code, 0, answered.stderr);
    const rows = answered.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const listed = rows.filter((r) => r.result === "member");
    assert.ok(
      listed.some((r) => r.pkiId === q.pkiId && r.organization === "Org2MSP" && r.signature === "valid"),
      answered.stdout,
    );
    assert.ok(
      listed.every((r) => r.internalEndpoint === null),
      "no internal endpoint for another org",
    );
    assert.equal(listed.filter((r) => r.state === "alive").at(-1)?.pkiId, a.pkiId);
    await Promise.all([a.peer.stop(), q.peer.stop()]);
  });

  it("without --identity runs an ephemeral dev identity; h2c with --no-tls; --metrics serves /metrics; --max-unauthenticated-streams sets the comm's limit; SIGHUP stops it (exit 0)", async () => {
    const e = await serve(["--no-tls", "--metrics", "--max-unauthenticated-streams", "4096"]);
    running.push(e.peer);
    const started = e.peer.json()[0] as Record<string, unknown>;
    assert.equal(started.ephemeral, true);
    assert.equal(started.mspId, "DevMSP");
    assert.equal(started.tls, false);
    assert.equal(started.metrics, `http://${e.endpoint}/metrics`);
    const ping = await cli(["ping", `http://${e.endpoint}`, "--json"]);
    assert.equal(ping.code, 0, ping.stderr);
    const metrics = await h2get(`http://${e.endpoint}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /gossip_comm_/);
    assert.match(metrics.body, /^gossip_comm_limit\{name="maxUnauthenticatedStreams"\} 4096$/m);
    // SIGHUP (the terminal closing) stops it as SIGTERM does: exit 0 after the `stopped` event, not 129.
    const stopped = await e.peer.stop("SIGHUP");
    assert.deepEqual([stopped.code, stopped.signal], [0, null], e.peer.stderr);
    assert.equal(e.peer.json().at(-1)?.event, "stopped");
  });
});

describe("serve: bad input", () => {
  it("a port in use exits 1 with one line (and a JSON error event with --json)", async () => {
    const holder = await holdPort();
    const taken = `127.0.0.1:${holder.port}`;
    const [human, json] = await Promise.all([
      cli(["serve", "--listen", taken, "--identity", ids.p2]),
      cli(["serve", "--listen", taken, "--identity", ids.p2, "--json"]),
    ]).finally(() => holder.close());
    assert.equal(human.code, 1);
    assert.match(oneErrorLine(human.stderr), /port \d+ on 127\.0\.0\.1 is already in use; fix: .*--listen/);
    assert.equal(json.code, 1);
    const ev = JSON.parse(json.stdout.trim().split("\n").at(-1) as string) as Record<string, unknown>;
    assert.equal(ev.event, "error");
    assert.equal(ev.exitCode, 1);
    assert.match(String(ev.message), /already in use/);
  });

  it("an unreachable bootstrap peer does not stop the peer: it is retried in the background and logged", async () => {
    const p = await serve(["--no-tls", "--bootstrap", "127.0.0.1:1"]);
    running.push(p.peer);
    const deadline = Date.now() + 10_000;
    while (!/Could not connect to bootstrap peer|connect failed/.test(p.peer.stderr) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    assert.match(p.peer.stderr, /127\.0\.0\.1:1/);
    assert.match(p.peer.stderr, /Could not connect to bootstrap peer|connect failed/);
    assert.equal((await p.peer.stop("SIGINT")).code, 0);
  });

  it("missing, incomplete or mismatched identity files exit 1 naming the file and the fix", async () => {
    const broken = (name: string) => {
      const d = join(ids.dir, name);
      cpSync(ids.p3, d, { recursive: true });
      return d;
    };
    const noKey = broken("no-key");
    rmSync(join(noKey, "identity-key.pem"));
    const mismatch = broken("mismatch");
    writeFileSync(join(mismatch, "tls-server-key.pem"), readFileSync(join(ids.p1, "tls-server-key.pem")));
    const badJson = broken("bad-json");
    writeFileSync(join(badJson, "identity.json"), "{ nope");
    const notPem = broken("not-pem");
    writeFileSync(join(notPem, "identity-cert.pem"), "hello");
    const cases: [string, RegExp][] = [
      [join(ids.dir, "does-not-exist"), /identity directory .*does-not-exist does not exist; fix: create it with 'gossip-connect init/],
      [noKey, /identity key .*identity-key\.pem is missing; fix: restore the file, or re-create it/],
      [mismatch, /TLS server certificate .*tls-server-cert\.pem does not match its key .*tls-server-key\.pem/],
      [badJson, /identity\.json is not valid JSON/],
      [notPem, /identity certificate .*identity-cert\.pem is not a PEM certificate/],
    ];
    const results = await Promise.all(cases.map(([dir]) => cli(["serve", "--listen", "127.0.0.1:0", "--identity", dir])));
    results.forEach((r, i) => {
      assert.equal(r.code, 1, r.stderr);
      assert.match(oneErrorLine(r.stderr), cases[i]?.[1] as RegExp);
    });
  });

  it("usage errors exit 2: bad --listen, bad --bootstrap, unknown flag, --trust-ca that is not a CA", async () => {
    const cases: [string[], number, RegExp][] = [
      [["serve", "--listen", "localhost"], 2, /--listen must be HOST:PORT/],
      [["serve", "--listen", "127.0.0.1:70000"], 2, /--listen must be HOST:PORT/],
      [["serve", "--bootstrap", "nowhere"], 2, /--bootstrap must be HOST:PORT/],
      [["serve", "--listen", "127.0.0.1:0", "--tls"], 2, /unknown option --tls/],
      [["serve", "--listen", "127.0.0.1:0", "--trust-ca", join(ids.p1, "identity-cert.pem")], 1, /is not a CA/],
      [["serve", "--listen", "127.0.0.1:0", "--trust-ca", join(ids.dir, "nope.pem")], 1, /--trust-ca file .*nope\.pem is missing/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args)));
    results.forEach((r, i) => {
      assert.equal(r.code, cases[i]?.[1], `${cases[i]?.[0].join(" ")}: ${r.stderr}`);
      assert.match(oneErrorLine(r.stderr), cases[i]?.[2] as RegExp);
    });
  });

  it("usage errors of the membership flags exit 2: bad --external-endpoint, --alive-interval 0 or -5 (a negative number is a value, as after =), an IPv6 listen address without --internal-endpoint, --anchor with an empty MSP ID or a bad endpoint", async () => {
    const cases: [string[], RegExp][] = [
      [["serve", "--external-endpoint", "nowhere"], /--external-endpoint must be HOST:PORT/],
      [["serve", "--alive-interval", "0"], /--alive-interval must be an integer/],
      [["serve", "--alive-interval", "-5"], /--alive-interval must be an integer from 1 to 3600000, got "-5"/],
      [["serve", "--max-unauthenticated-streams", "0"], /--max-unauthenticated-streams must be an integer/],
      [["serve", "--listen", "[::1]:0"], /IPv6.*--internal-endpoint/],
      [["serve", "--anchor", "127.0.0.1:7051@"], /--anchor "127.0.0.1:7051@" has an empty MSP ID/],
      [["serve", "--anchor", "nowhere@Org1MSP"], /--anchor must be HOST:PORT/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args)));
    results.forEach((r, i) => {
      assert.equal(r.code, 2, `${cases[i]?.[0].join(" ")}: ${r.stderr}`);
      assert.match(oneErrorLine(r.stderr), cases[i]?.[1] as RegExp);
    });
  });
});
