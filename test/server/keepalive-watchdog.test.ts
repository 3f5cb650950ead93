// The server-side HTTP/2 PING watchdog finds a frozen peer: a client process
// with an open GossipStream is SIGSTOPped (its TCP connection stays up, the
// kernel keeps ACKing), and the server destroys its session once a PING goes
// unanswered. Responsive clients are left alone.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import type * as http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { connectRaw } from "../helpers/h2.js";
import { eventually, metricValue, startPeer, type TestPeer } from "../helpers/peers.js";

const intervalMs = 200;
const timeoutMs = 500;
let peer: TestPeer;
let child: ChildProcess | undefined;
const serverSessions = new Map<number, { session: http2.ServerHttp2Session; closedAt?: number }>();

// A client that opens a GossipStream, reports its local port once the server answered, then idles.
const childScript = `
const http2 = require("node:http2");
const s = http2.connect(process.env.GOSSIP_URL);
s.on("error", () => {});
const st = s.request({ ":method": "POST", ":path": "/gossip.Gossip/GossipStream", "content-type": "application/grpc", te: "trailers" });
st.on("error", () => {});
st.once("response", () => process.stdout.write("ready " + s.socket.localPort + "\\n"));
setInterval(() => {}, 1000);
`;

before(async () => {
  peer = await startPeer({
    tls: false,
    // connTimeoutMs long: the frozen client's stream stays open in its handshake.
    options: { serverKeepaliveIntervalMs: intervalMs, serverKeepaliveTimeoutMs: timeoutMs, connTimeoutMs: 30_000 },
    plugin: { metrics: true },
  });
  peer.app.server.on("session", (session: http2.ServerHttp2Session) => {
    const port = session.socket?.remotePort;
    if (port === undefined) return;
    const entry: { session: http2.ServerHttp2Session; closedAt?: number } = { session };
    serverSessions.set(port, entry);
    session.once("close", () => (entry.closedAt = performance.now()));
  });
});

after(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill("SIGCONT");
    child.kill("SIGKILL");
  }
  await peer?.close();
});

/** Spawns the client and resolves with its local port once its stream was answered. */
function spawnClient(url: string, ms = 5000): Promise<{ proc: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ["-e", childScript], {
      env: { ...process.env, GOSSIP_URL: url },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const timer = setTimeout(() => reject(new Error(`client not ready within ${ms}ms`)), ms);
    let out = "";
    proc.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /ready (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, port: Number(m[1]) });
      }
    });
    proc.once("exit", () => {
      clearTimeout(timer);
      reject(new Error("client exited early"));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("server PING watchdog", () => {
  it("destroys the session of a SIGSTOPped client within interval + timeout, and keeps responsive clients", async () => {
    // A responsive client, in this process.
    const control = connectRaw(peer, { tls: false });
    let controlClosed = false;
    control.once("close", () => (controlClosed = true));
    await new Promise<void>((r) => control.once("connect", () => r()));

    const { proc, port } = await spawnClient(`http://${peer.endpoint}`);
    child = proc;
    const entry = serverSessions.get(port);
    assert.ok(entry, "the server saw the client's session");

    // While the client runs, it answers PINGs: several watchdog rounds pass without a kill.
    await sleep(2 * (intervalMs + timeoutMs));
    assert.equal(entry.closedAt, undefined, "a responsive client's session was closed");

    const killedBefore = await metricValue(peer, "gossip_comm_refused_total", { reason: "closed" });
    proc.kill("SIGSTOP");
    const stoppedAt = performance.now();
    const bound = intervalMs + timeoutMs + 2000;
    await eventually(() => entry.closedAt !== undefined, bound, "the frozen client's session to close");
    const closedAt = (entry as { closedAt?: number }).closedAt ?? Number.NaN;
    const ms = closedAt - stoppedAt;
    assert.ok(ms < bound, `closed ${Math.round(ms)} ms after SIGSTOP`);
    // A PING sent just before the stop may already be waiting: at least timeout - interval.
    assert.ok(ms >= timeoutMs - intervalMs, `closed ${Math.round(ms)} ms after SIGSTOP, before a PING could time out`);
    assert.equal(await metricValue(peer, "gossip_comm_refused_total", { reason: "closed" }), killedBefore + 1);

    // The responsive client survived all of it, and the server still serves it.
    assert.equal(controlClosed, false);
    const pong = await new Promise<Error | null>((r) => control.ping((err) => r(err)));
    assert.equal(pong, null);
    control.close();

    proc.kill("SIGCONT");
    proc.kill("SIGKILL");
  });
});
