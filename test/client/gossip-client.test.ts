// The outbound dialer (GossipClient) against real loopback listeners: dial
// timeout, refused connections, untrusted TLS, a Ping nobody answers, the
// captured server certificate, and a 20 MB message through a GossipStream.
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import * as http2 from "node:http2";
import * as net from "node:net";
import { after, before, describe, it } from "node:test";
import { GossipClient } from "../../src/client/gossip-client.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import { createCa } from "../../src/pki/certificates.js";
import { dataMessage, firstMatch, startPeer, type TestPeer } from "../helpers/peers.js";

const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** Runs `f`, expecting a GossipError; returns it with the time it took. */
async function failure(f: () => Promise<unknown>): Promise<{ error: GossipError; ms: number }> {
  const t0 = performance.now();
  try {
    await f();
  } catch (e) {
    const ms = performance.now() - t0;
    assert.ok(e instanceof GossipError, `expected a GossipError, got ${String(e)}`);
    return { error: e, ms };
  }
  assert.fail("expected a failure, got success");
}

/** A TCP listener that accepts connections and never writes a byte. */
async function silentListener(): Promise<{ port: number; accepted: () => number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => accepted,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function sha256(der: Uint8Array): string {
  return createHash("sha256").update(der).digest("hex");
}

describe("GossipClient.connect", () => {
  it("refuses an endpoint that is not host:port (a member learned without one) with DialFailed, not an internal error", async () => {
    for (const endpoint of ["", "no-port", "bad host:1"]) {
      await assert.rejects(
        GossipClient.connect(endpoint),
        (e: unknown) => e instanceof GossipError && e.code === ErrorCode.DialFailed,
        endpoint,
      );
    }
  });

  it("times out (DialTimeout) on an h2c listener that accepts but never speaks HTTP/2", async () => {
    const silent = await silentListener();
    closers.push(silent.close);
    const dialTimeoutMs = 400;
    const { error, ms } = await failure(() => GossipClient.connect(`127.0.0.1:${silent.port}`, { options: { dialTimeoutMs } }));
    assert.equal(error.code, ErrorCode.DialTimeout);
    assert.equal(silent.accepted(), 1, "the TCP connection was accepted: the timeout is about HTTP/2, not TCP");
    assert.ok(ms >= dialTimeoutMs - 20, `failed after ${ms} ms, before the ${dialTimeoutMs} ms dial timeout`);
    assert.ok(ms < dialTimeoutMs + 1000, `failed after ${ms} ms, expected about ${dialTimeoutMs} ms`);
  });

  it("times out (DialTimeout) on a listener that never answers the TLS handshake", async () => {
    const silent = await silentListener();
    closers.push(silent.close);
    const dialTimeoutMs = 400;
    const ca = createCa({ commonName: "unused test CA" });
    const { error, ms } = await failure(() =>
      GossipClient.connect(`127.0.0.1:${silent.port}`, { tls: { ca: ca.certPem }, options: { dialTimeoutMs } }),
    );
    assert.equal(error.code, ErrorCode.DialTimeout);
    assert.ok(ms < dialTimeoutMs + 1000, `failed after ${ms} ms`);
  });

  it("fails fast (DialFailed) when the connection is refused", async () => {
    // A port that was just free: listen, note it, close.
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const { error, ms } = await failure(() => GossipClient.connect(`127.0.0.1:${port}`, { options: { dialTimeoutMs: 3000 } }));
    assert.equal(error.code, ErrorCode.DialFailed);
    assert.ok(ms < 1000, `refused dial took ${ms} ms`);
  });

  it("fails with TlsFailed against a server whose certificate chains to a CA we do not trust", async () => {
    const peer = await startPeer({ tls: true });
    closers.push(() => peer.close());
    const stranger = createCa({ commonName: "stranger CA" });
    const { error } = await failure(() =>
      GossipClient.connect(peer.endpoint, {
        tls: { ca: stranger.certPem, cert: peer.material.tlsClient.certPem, key: peer.material.tlsClient.keyPem },
        options: { dialTimeoutMs: 2000 },
      }),
    );
    assert.equal(error.code, ErrorCode.TlsFailed);
    // The same server with the right CA is reachable: the failure was the trust, not the server.
    const ok = await GossipClient.connect(peer.endpoint, { tls: { ca: peer.material.ca.certPem } });
    closers.push(() => ok.close());
    await ok.ping();
  });

  it("captures the server's leaf certificate (TLS) and none over h2c", async () => {
    const peer = await startPeer({ tls: true });
    closers.push(() => peer.close());
    const m = peer.material;
    const client = await GossipClient.connect(peer.endpoint, {
      tls: { ca: m.ca.certPem, cert: m.tlsClient.certPem, key: m.tlsClient.keyPem },
    });
    closers.push(() => client.close());
    assert.ok(client.serverCertificate, "no server certificate captured");
    const expected = new X509Certificate(m.tlsServer.certPem).raw;
    assert.equal(sha256(client.serverCertificate), sha256(expected));
    assert.notEqual(sha256(client.serverCertificate), sha256(new X509Certificate(m.tlsClient.certPem).raw));

    const plain = await startPeer({ tls: false });
    closers.push(() => plain.close());
    const h2c = await GossipClient.connect(plain.endpoint);
    closers.push(() => h2c.close());
    assert.equal(h2c.serverCertificate, undefined);
    await h2c.ping();
  });
});

describe("GossipClient.ping", () => {
  it("fails with PingFailed within connTimeoutMs when the HTTP/2 server never answers the call", async () => {
    const server = http2.createServer();
    const held: http2.ServerHttp2Stream[] = [];
    server.on("stream", (s) => {
      s.on("error", () => {});
      held.push(s); // never respond
    });
    server.on("session", (s) => s.on("error", () => {}));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    closers.push(
      () =>
        new Promise<void>((r) => {
          for (const s of held) if (!s.destroyed) s.destroy();
          server.close(() => r());
        }),
    );
    const port = (server.address() as net.AddressInfo).port;
    const connTimeoutMs = 400;
    const client = await GossipClient.connect(`127.0.0.1:${port}`, { options: { connTimeoutMs } });
    closers.push(() => client.close());
    const { error, ms } = await failure(() => client.ping());
    assert.equal(error.code, ErrorCode.PingFailed);
    assert.ok(held.length >= 1, "the Ping request reached the server");
    assert.ok(ms >= connTimeoutMs - 20, `failed after ${ms} ms, before connTimeoutMs`);
    assert.ok(ms < connTimeoutMs + 1000, `failed after ${ms} ms, expected about ${connTimeoutMs} ms`);
  });
});

describe("large messages", () => {
  let a: TestPeer;
  let b: TestPeer;
  before(async () => {
    const options = { maxMessageBytes: 100 * 1024 * 1024 };
    a = await startPeer({ tls: false, options });
    b = await startPeer({ tls: false, options });
  });
  after(async () => {
    await a?.close();
    await b?.close();
  });

  it("a 20 MB message crosses a GossipStream opened by the client, both ways", async () => {
    const size = 20 * 1024 * 1024;
    const payload = new Uint8Array(size);
    for (let i = 0; i < size; i += 4096) payload[i] = (i / 4096) & 0xff;
    payload[size - 1] = 0xab;

    // a dials b (GossipClient stream, client → server direction).
    const atB = b.comm.accept();
    void a.comm.send(dataMessage(1, payload), { endpoint: b.endpoint, pkiId: b.comm.pkiId });
    const got = await firstMatch(atB, (m) => m.message.content.case === "dataMsg", 20_000);
    atB.close();
    const data = got.message.content.case === "dataMsg" ? got.message.content.value.payload?.data : undefined;
    assert.equal(data?.length, size);
    assert.equal(data?.[size - 1], 0xab);
    assert.equal(data?.[4096 * 7], 7);
    assert.equal(got.connection.direction, "inbound");

    // b answers on the same connection (server → client direction).
    const atA = a.comm.accept();
    void b.comm.send(dataMessage(2, payload), { endpoint: a.endpoint, pkiId: a.comm.pkiId });
    const back = await firstMatch(atA, (m) => m.message.content.case === "dataMsg", 20_000);
    atA.close();
    const backData = back.message.content.case === "dataMsg" ? back.message.content.value.payload?.data : undefined;
    assert.equal(backData?.length, size);
    assert.equal(backData?.[size - 1], 0xab);
    assert.equal(back.connection.direction, "outbound", "the answer came over a's own outbound stream");
  });
});
