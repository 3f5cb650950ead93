// Shutdown with hundreds of open streams: 300 authenticated GossipStreams
// from 300 comms in 3 client processes, all sending (sendWithAck and send)
// while the server shuts down:
// - Fastify close() (the plugin's own comm) and
// - comm.stop() of a comm the application owns, then close()
// each complete within the shutdown bound (below); every sendWithAck that succeeded
// was delivered exactly once, and every message the clients accepted into a
// send buffer was written or counted (dropped / overflow).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pkiIdHex } from "../../src/core/identity.js";
import { createPeerMaterial } from "../../src/pki/certificates.js";
import { must } from "../helpers/must.js";
import { caFor, cleanupAfter, eventually, startPeer, type TestPeer } from "../helpers/peers.js";
import { killAllWorkers, type Ready, sleep, spawnWorker, within, workerPeer } from "./workers.js";

const { closers } = cleanupAfter(killAllWorkers);

const processes = 3;
const perProcess = 100;
const total = processes * perProcess;
const drainTimeoutMs = 2000;
/**
 * A connection's drain has two phases bounded by drainTimeoutMs each (flush
 * our queue, then wait for the remote to end its side) before it is cut; all
 * connections drain in parallel. So stop() finishes within 2 x drainTimeoutMs;
 * close() then closes the HTTP/2 sessions, idle by then. Plus 1 s for 300
 * sessions on a loaded 2-core machine.
 */
const shutdownBoundMs = 2 * drainTimeoutMs + 1000;
const serverOptions = {
  drainTimeoutMs,
  // 300 handshakes from one address within a second or two: above the flood limits' defaults.
  maxHandshakesPerSecondPerAddress: 2000,
  maxUnauthenticatedStreams: 1000,
  connTimeoutMs: 10_000,
};

interface PeerStats {
  accepted: number;
  messagesSent: number;
  dropped: number;
  overflow: number;
  sendBuffered: number;
}

/** A server that records and acknowledges every data message. */
function receiver(p: TestPeer) {
  const seqs = new Map<number, number>();
  void (async () => {
    for await (const m of p.comm.accept()) {
      if (m.message.content.case !== "dataMsg") continue;
      const s = Number(m.message.content.value.payload?.seqNum ?? -1n);
      seqs.set(s, (seqs.get(s) ?? 0) + 1);
      void m.ack();
    }
  })();
  return seqs;
}

/** Starts the client processes, connects all of them to `server`, and returns them. */
async function connectAll(server: TestPeer): Promise<Ready[]> {
  const ca = caFor("Org1MSP");
  const to = { endpoint: server.endpoint, pkiId: pkiIdHex(server.comm.pkiId) };
  const workers = await Promise.all(
    Array.from({ length: processes }, (_, w) =>
      spawnWorker(`clients-${w}`, {
        peers: Array.from({ length: perProcess }, () => workerPeer(createPeerMaterial({ mspId: "Org1MSP", ca }), {})),
        options: { dialTimeoutMs: 15_000, connTimeoutMs: 15_000 },
      }),
    ),
  );
  // A round of load connects every comm (sendWithAck and send both dial); on a
  // loaded machine some dials may time out, and the next round re-dials them.
  for (let round = 0; round < 3 && server.comm.connections().length < total; round++) {
    const before = workers.map((w) => ({ w, done: w.worker.all("loadDone").length }));
    await Promise.all(
      workers.map((w, i) =>
        w.worker.call("load", { to, rounds: 1, intervalMs: 0, timeoutMs: 20_000, seqBase: i * 10_000_000 + round * 100_000 }),
      ),
    );
    await Promise.all(before.map(({ w, done }) => w.worker.waitFor(() => w.worker.all("loadDone").length > done, 60_000, "connections")));
    await eventually(() => server.comm.connections().length === total, 2000, `${total} connections`).catch(() => {});
  }
  assert.equal(server.comm.connections().length, total, `${total} connections`);
  return workers;
}

/** loadDone events that mean the load of startLoad finished, per worker. */
const loadRounds = new Map<Ready, number>();

/** Starts load on every worker (25 rounds, one every 20 ms). */
async function startLoad(server: TestPeer, workers: Ready[]): Promise<void> {
  for (const w of workers) loadRounds.set(w, w.worker.all("loadDone").length + 1);
  const to = { endpoint: server.endpoint, pkiId: pkiIdHex(server.comm.pkiId) };
  await Promise.all(
    workers.map((w, i) => w.worker.call("load", { to, rounds: 25, intervalMs: 20, timeoutMs: 3000, seqBase: i * 10_000_000 + 1_000_000 })),
  );
  await sleep(200); // messages are flowing
}

/** Waits for the load to finish, stops the clients, and checks both ends. */
async function checkNothingLost(seqs: Map<number, number>, workers: Ready[]) {
  await Promise.all(
    workers.map((w) => {
      const rounds = must(loadRounds.get(w), `${w.worker.name}'s load rounds`);
      return w.worker.waitFor(() => w.worker.all("loadDone").length >= rounds, 30_000, "load to finish");
    }),
  );
  const stops = await Promise.all(workers.map((w) => w.worker.call<{ ms: number; peers: PeerStats[] }>("stop", {}, 30_000)));
  let accepted = 0;
  let written = 0;
  let counted = 0;
  const stoppedMs = stops.map((s) => Math.round(s.ms));
  for (const s of stops) {
    s.peers.forEach((p, i) => {
      assert.equal(p.sendBuffered, 0);
      if (i % 2 === 1) {
        // Odd peers only send(): exact accounting.
        assert.equal(
          p.messagesSent + p.dropped + p.overflow,
          p.accepted,
          `peer ${i}: accepted ${p.accepted} = sent ${p.messagesSent} + dropped ${p.dropped} + overflow ${p.overflow}`,
        );
        accepted += p.accepted;
        written += p.messagesSent;
        counted += p.dropped + p.overflow;
      }
    });
  }
  const dups = [...seqs].filter(([, n]) => n > 1);
  assert.deepEqual(dups, [], "no duplicate delivery");
  const acked = workers.flatMap((w) => w.worker.all("acked", (e) => e.ok === true).map((e) => Number(e.seq)));
  const ackFailed = workers.flatMap((w) => w.worker.all("acked", (e) => e.ok !== true).map((e) => String(e.code)));
  const missing = acked.filter((s) => !seqs.has(s));
  assert.deepEqual(missing, [], "every acked message delivered");
  const failures: Record<string, number> = {};
  for (const c of ackFailed) failures[c] = (failures[c] ?? 0) + 1;
  return {
    acked: acked.length,
    ackFailures: failures,
    sendAccepted: accepted,
    sendWritten: written,
    sendDroppedOrOverflow: counted,
    delivered: seqs.size,
    clientStopMs: stoppedMs,
  };
}

describe(`shutdown with ${total} open streams`, () => {
  it("Fastify close() completes within the shutdown bound under load, nothing acked lost", async () => {
    const server = await startPeer({ options: serverOptions });
    let closed = false;
    closers.push(() => (closed ? Promise.resolve() : server.close()));
    const seqs = receiver(server);
    const t0 = performance.now();
    const workers = await connectAll(server);
    const connectMs = performance.now() - t0;
    await startLoad(server, workers);
    const open = server.comm.connections().length;
    assert.equal(open, total);
    const c0 = performance.now();
    await within(server.app.close(), drainTimeoutMs + 10_000);
    const closeMs = performance.now() - c0;
    closed = true;
    assert.ok(closeMs < shutdownBoundMs, `close() took ${Math.round(closeMs)} ms with ${open} streams`);
    assert.equal(server.comm.connections().length, 0);
    const r = await checkNothingLost(seqs, workers);
    console.log(
      JSON.stringify({ test: "shutdown-close", streams: open, connectMs: Math.round(connectMs), closeMs: Math.round(closeMs), ...r }),
    );
    await killAllWorkers();
  });

  it("comm.stop() of an application-owned comm, then close(), each within the shutdown bound", async () => {
    // wrapDialer makes the test own the comm: close() then leaves it alone.
    const server = await startPeer({ options: serverOptions, wrapDialer: (d) => d });
    let closed = false;
    closers.push(() => (closed ? Promise.resolve() : server.close()));
    const seqs = receiver(server);
    const workers = await connectAll(server);
    await startLoad(server, workers);
    const open = server.comm.connections().length;
    assert.equal(open, total);
    const s0 = performance.now();
    await within(server.comm.stop(), drainTimeoutMs + 10_000);
    const stopMs = performance.now() - s0;
    assert.ok(stopMs < shutdownBoundMs, `stop() took ${Math.round(stopMs)} ms with ${open} streams`);
    assert.equal(server.comm.connections().length, 0);
    const c0 = performance.now();
    await within(server.app.close(), drainTimeoutMs + 10_000);
    const closeMs = performance.now() - c0;
    closed = true;
    assert.ok(closeMs < shutdownBoundMs, `close() after stop() took ${Math.round(closeMs)} ms`);
    const r = await checkNothingLost(seqs, workers);
    console.log(
      JSON.stringify({ test: "shutdown-stop", streams: open, stopMs: Math.round(stopMs), closeAfterStopMs: Math.round(closeMs), ...r }),
    );
    await killAllWorkers();
  });
});
