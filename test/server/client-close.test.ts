// A peer that closes its outbound connection normally (closeConn, stop) is
// leaving, not misbehaving: connect-node ends the HTTP/2 session with GOAWAY
// CANCEL, and the server must neither log a warning nor count a refused
// malformed frame for it. (Found by the soak: simultaneous dials in a mesh
// closed duplicates and every close was logged as "HTTP/2 session error".)
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type * as net from "node:net";
import { describe, it } from "node:test";
import type { Logger } from "../../src/core/logger.js";
import { cleanupAfter, dataMessage, eventually, metricValue, startPeer, type TestPeer } from "../helpers/peers.js";

const { closers } = cleanupAfter();

function recordingLogger(lines: string[]): Logger {
  const logger: Logger = {
    debug() {},
    info() {},
    warn: (obj, msg) => lines.push(`warn ${msg} ${JSON.stringify(obj)}`),
    error: (obj, msg) => lines.push(`error ${msg} ${JSON.stringify(obj)}`),
    child: () => logger,
  };
  return logger;
}

describe("a client closing its connection normally", () => {
  it("is neither logged as a warning nor counted as refused by the server (closeConn, then stop)", async () => {
    const lines: string[] = [];
    const b = await startPeer({ plugin: { metrics: true, logger: recordingLogger(lines) } });
    closers.push(() => b.close());
    const a: TestPeer = await startPeer();
    let aClosed = false;
    closers.push(() => (aClosed ? Promise.resolve() : a.close()));
    const to = { endpoint: b.endpoint, pkiId: b.comm.pkiId };
    const connected = () => b.comm.connections().length === 1 && a.comm.connections().length === 1;

    await a.comm.send(dataMessage(1), to);
    await eventually(connected, 5000, "a -> b connected");
    a.comm.closeConn(to);
    await eventually(() => b.comm.connections().length === 0, 5000, "b's side of the connection to close");

    await a.comm.send(dataMessage(2), to);
    await eventually(connected, 5000, "a -> b connected again");
    await a.close();
    aClosed = true;
    await eventually(() => b.comm.connections().length === 0, 5000, "b's side of the connection to close");
    await new Promise((r) => setTimeout(r, 200)); // session 'close' and 'error' events have run

    assert.deepEqual(lines, [], "no warn or error lines");
    for (const reason of ["malformed_frame", "closed"]) {
      assert.equal(await metricValue(b, "gossip_comm_refused_total", { reason }), 0, `refused{reason=${reason}}`);
    }
  });
});

describe("a client whose TCP connection is reset", () => {
  it("is neither logged as a warning nor counted as a malformed frame (a peer gone, not bad input)", async () => {
    const lines: string[] = [];
    const b = await startPeer({ tls: false, plugin: { metrics: true, logger: recordingLogger(lines) } });
    closers.push(() => b.close());
    for (let i = 0; i < 5; i++) {
      const session = http2.connect(`http://${b.endpoint}`);
      session.on("error", () => {});
      const req = session.request({
        ":method": "POST",
        ":path": "/gossip.Gossip/GossipStream",
        "content-type": "application/grpc",
        te: "trailers",
      });
      req.on("error", () => {});
      await new Promise<void>((r) => req.once("response", () => r()));
      (session.socket as net.Socket).resetAndDestroy(); // RST on the wire: ECONNRESET on the server
    }
    await eventually(() => b.comm.stats().unauthenticatedStreams === 0, 5000, "the streams to end");
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(
      lines.filter((l) => l.includes("HTTP/2 session error")),
      [],
      "no session-error warnings",
    );
    assert.equal(await metricValue(b, "gossip_comm_refused_total", { reason: "malformed_frame" }), 0);
  });
});
