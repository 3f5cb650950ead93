// Observability (issue 5, item 6): /metrics, scraped over HTTP/2 after real
// traffic, a refused handshake, an overflow and a presumed-dead peer, exposes
// Fabric's three gossip comm metrics and the operator metrics with nonzero
// values; and every pino line about a peer carries its address (and its
// PKI-ID once the handshake proved it).
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import * as net from "node:net";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import type { Logger } from "../../src/core/logger.js";
import { grpcFrame, grpcHeaders, rawRequest } from "../helpers/h2.js";
import { collect, dataMessage, eventually, startPeer, type TestPeer } from "../helpers/peers.js";

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

const lines: LogLine[] = [];
const logger = pino(
  { level: "debug" },
  new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString("utf8").split("\n")) if (l.trim()) lines.push(JSON.parse(l) as LogLine);
      cb();
    },
  }),
) as unknown as Logger;

/** GET `path` over HTTP/2 with TLS, as a scraper with the peer's client certificate; resolves with status, content-type and body. */
async function h2get(peer: TestPeer, path: string): Promise<{ status: number; contentType: string; body: string }> {
  const m = peer.material;
  const session = http2.connect(`https://${peer.endpoint}`, { ca: m.ca.certPem, cert: m.tlsClient.certPem, key: m.tlsClient.keyPem });
  session.on("error", () => {});
  try {
    return await new Promise((resolve, reject) => {
      const req = session.request({ ":method": "GET", ":path": path });
      let status = 0;
      let contentType = "";
      const chunks: Buffer[] = [];
      req.on("response", (h) => {
        status = Number(h[":status"]);
        contentType = String(h["content-type"]);
      });
      req.on("data", (d: Buffer) => chunks.push(d));
      req.on("end", () => resolve({ status, contentType, body: Buffer.concat(chunks).toString("utf8") }));
      req.on("error", reject);
      req.end();
    });
  } finally {
    session.close();
  }
}

/** Sum of the samples of `name` whose label set contains `labels`, from Prometheus text; undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let found: number | undefined;
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const set = m[2] ?? "";
    if (!Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) continue;
    found = (found ?? 0) + Number(m[3]);
  }
  return found;
}

describe("/metrics after real traffic", () => {
  let server: TestPeer;
  let client: TestPeer;
  let blackhole: net.Server;
  const held: net.Socket[] = [];

  before(async () => {
    server = await startPeer({ tls: true, options: { sendBuffSize: 5, connTimeoutMs: 1000 }, plugin: { metrics: true, logger } });
    client = await startPeer({ tls: true });
    // Accepts TCP and never answers: a dial to it hangs until dialTimeoutMs (1 s in tests).
    blackhole = net.createServer((s) => held.push(s.on("error", () => {})));
    await new Promise<void>((r) => blackhole.listen(0, "127.0.0.1", r));
  });
  after(async () => {
    for (const s of held) s.destroy();
    blackhole?.close();
    await client?.close();
    await server?.close();
  });

  it("exposes Fabric's names and the operator metrics with nonzero values; peer log lines carry PKI-ID and address", async () => {
    const to = (p: TestPeer) => ({ endpoint: p.endpoint, pkiId: p.comm.pkiId });
    // Traffic both ways over one connection.
    const atServer = server.comm.accept();
    const atClient = client.comm.accept();
    for (let i = 1; i <= 3; i++) await client.comm.send(dataMessage(i, new Uint8Array(100)), to(server));
    assert.equal((await collect(atServer, 3, 5000)).length, 3);
    for (let i = 4; i <= 6; i++) await server.comm.send(dataMessage(i, new Uint8Array(100)), to(client));
    assert.equal((await collect(atClient, 3, 5000)).length, 3);
    atServer.close();
    atClient.close();

    // A refused handshake: a TLS client whose first message is not a ConnEstablish.
    const m = client.material;
    const raw = http2.connect(`https://${server.endpoint}`, { ca: m.ca.certPem, cert: m.tlsClient.certPem, key: m.tlsClient.keyPem });
    raw.on("error", () => {});
    const refused = await rawRequest(raw, "/gossip.Gossip/GossipStream", grpcHeaders, [grpcFrame(Buffer.from([0x0a, 0x01, 0x01]))]);
    raw.close();
    assert.notEqual(refused.grpcStatus, 0);

    // Sends to a peer that never answers: the queue in front of the dial holds what a connection's
    // send buffer would: a full buffer of 5 (sent in one task, none is handed on yet: a buffer's
    // first write waits for the end of the task), the rest overflow, then presumed dead.
    const deadEndpoint = `127.0.0.1:${(blackhole.address() as net.AddressInfo).port}`;
    for (let i = 0; i < 8; i++) await server.comm.send(dataMessage(100 + i), { endpoint: deadEndpoint });
    const during = await h2get(server, "/metrics");
    assert.equal(sample(during.body, "gossip_comm_send_buffer_messages"), 5, "send-buffer occupancy while the dial is pending");
    await eventually(() => server.comm.stats().presumedDead > 0, 5000, "presumed dead");

    const { status, contentType, body } = await h2get(server, "/metrics");
    assert.equal(status, 200);
    assert.match(contentType, /^text\/plain; version=0\.0\.4/);
    const positive: [string, Record<string, string>][] = [
      ["gossip_comm_messages_sent", {}],
      ["gossip_comm_messages_received", {}],
      ["gossip_comm_overflow_count", {}],
      ["gossip_comm_sent_bytes_total", {}],
      ["gossip_comm_received_bytes_total", {}],
      ["gossip_comm_connections_open", { direction: "inbound" }],
      ["gossip_comm_handshakes_total", { direction: "inbound", outcome: "ok" }],
      ["gossip_comm_handshakes_total", { direction: "inbound", outcome: "malformed_message" }],
      ["gossip_comm_presumed_dead_total", {}],
      ["gossip_comm_dropped_messages_total", { reason: "dial_failed" }],
      ["gossip_comm_limit", { name: "maxUnauthenticatedStreams" }],
      ["gossip_comm_limit", { name: "maxHandshakesPerSecondPerAddress" }],
      ["gossip_comm_limit", { name: "maxConnectionsPerPeer" }],
      ["gossip_comm_limit", { name: "maxConcurrentStreams" }],
      ["gossip_comm_limit", { name: "maxHeaderListBytes" }],
      ["gossip_comm_limit", { name: "maxStreamResetsPerSecond" }],
    ];
    for (const [name, labels] of positive) {
      const v = sample(body, name, labels);
      assert.ok(v !== undefined && v > 0, `${name}${JSON.stringify(labels)} = ${v}`);
    }
    assert.equal(sample(body, "gossip_comm_messages_sent"), 3);
    assert.equal(sample(body, "gossip_comm_messages_received"), 3);
    assert.equal(sample(body, "gossip_comm_overflow_count"), 3); // 8 sends, 5 held in front of the dial
    for (const name of [
      "gossip_comm_unauthenticated_streams",
      "gossip_comm_send_buffer_messages",
      "gossip_comm_refused_total",
      "gossip_comm_pending_acks",
    ]) {
      assert.match(body, new RegExp(`^# TYPE ${name} `, "m"), `${name} is exported`);
    }

    // Logs: every line about a peer names its address; lines after a handshake also its PKI-ID.
    const peerLines = lines.filter((l) => l.pkiId !== undefined || l.address !== undefined);
    assert.ok(
      peerLines.some((l) => l.msg === "handshake failed"),
      "the refused handshake was logged",
    );
    assert.ok(
      peerLines.some((l) => l.msg === "peer presumed dead"),
      "presumed dead was logged",
    );
    for (const l of peerLines) assert.ok(typeof l.address === "string" && l.address.length > 0, `address on "${l.msg}"`);
    for (const l of lines.filter((x) => x.pkiId !== undefined)) assert.match(String(l.pkiId), /^[0-9a-f]*$/, `hex PKI-ID on "${l.msg}"`);
    const dead = lines.find((l) => l.msg === "peer presumed dead");
    assert.equal(dead?.address, deadEndpoint);
  });
});
