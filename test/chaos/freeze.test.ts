// A frozen peer (SIGSTOP: its TCP connections stay up, the kernel keeps
// ACKing, nothing answers) is found by keepalive within the configured window:
// - client side: our dialer's HTTP/2 PINGs on an outbound connection
//   (clientKeepaliveIntervalMs + clientKeepaliveTimeoutMs);
// - server side: the plugin's PING watchdog on an inbound connection
//   (serverKeepaliveIntervalMs + serverKeepaliveTimeoutMs).
// A send to the frozen peer is presumed dead within dialTimeout + connTimeout,
// the peer is reachable again after SIGCONT, and every acknowledged message
// was delivered exactly once.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ConnectionEvent, PresumedDeadEvent } from "../../src/core/comm.js";
import { ErrorCode } from "../../src/core/errors.js";
import { pkiIdHex } from "../../src/core/identity.js";
import { createPeerMaterial } from "../../src/pki/certificates.js";
import { must } from "../helpers/must.js";
import { caFor, cleanupAfter, dataMessage, eventually, startPeer, type TestPeer } from "../helpers/peers.js";
import { killAllWorkers, sleep, spawnWorker, workerPeer } from "./workers.js";

const { closers } = cleanupAfter(killAllWorkers);

const intervalMs = 300;
const timeoutMs = 700;
const dialTimeoutMs = 1000;
const connTimeoutMs = 1000;

/** Records a comm's connection and presumed-dead events with their time. */
function record(p: TestPeer) {
  const conns: (ConnectionEvent & { at: number })[] = [];
  const dead: (PresumedDeadEvent & { at: number })[] = [];
  void (async () => {
    for await (const c of p.comm.connectionEvents) conns.push({ ...c, at: performance.now() });
  })();
  void (async () => {
    for await (const d of p.comm.presumedDead) dead.push({ ...d, at: performance.now() });
  })();
  return { conns, dead };
}

describe("frozen peer (SIGSTOP)", () => {
  it("client side: our dialer's keepalive closes the outbound connection within interval + timeout", async () => {
    const wMaterial = createPeerMaterial({ mspId: "Org1MSP", ca: caFor("Org1MSP") });
    const w = await spawnWorker("frozen-server", {
      peers: [workerPeer(wMaterial, {}, { listen: { host: "127.0.0.1", port: 0 } })],
      autoAck: true,
      reportEach: true,
    });
    const wp = must(w.peers[0], "the worker's peer");
    const to = { endpoint: wp.endpoint, pkiId: new Uint8Array(Buffer.from(wp.pkiId, "hex")) };
    const p = await startPeer({
      options: { clientKeepaliveIntervalMs: intervalMs, clientKeepaliveTimeoutMs: timeoutMs, dialTimeoutMs, connTimeoutMs },
    });
    closers.push(() => p.close());
    const ev = record(p);
    const acked = new Set<number>();
    const ack = async (seq: number, ms = 2000) => {
      const r = await p.comm.sendWithAck(dataMessage(seq), ms, 1, to);
      if (r.ackCount === 1) acked.add(seq);
      return r;
    };

    // A second sender, fire-and-forget all along (before, during and after the freeze), for the accounting.
    const f = await startPeer({
      options: { clientKeepaliveIntervalMs: intervalMs, clientKeepaliveTimeoutMs: timeoutMs, dialTimeoutMs, connTimeoutMs },
    });
    closers.push(() => f.close());
    let accepted = 0;
    let sending = true;
    const fireAndForget = (async () => {
      for (let i = 1; i <= 3000 && sending; i++) {
        accepted++;
        void f.comm.send(dataMessage(1_000_000 + i), to);
        await sleep(5);
      }
    })();

    for (let i = 1; i <= 20; i++) assert.equal((await ack(i)).ackCount, 1, `ack ${i} before the freeze`);
    // Several keepalive rounds pass on a responsive peer without a close.
    await sleep(2 * (intervalMs + timeoutMs));
    assert.equal(ev.conns.filter((c) => c.type === "disconnected").length, 0, "a responsive peer's connection was closed");

    w.worker.kill("SIGSTOP");
    const stoppedAt = performance.now();
    // A message sent while frozen is not acknowledged.
    const frozenAck = ack(100, 1000);
    await eventually(
      () => ev.conns.some((c) => c.type === "disconnected"),
      intervalMs + timeoutMs + 3000,
      "keepalive to close the connection",
    );
    const closedMs =
      must(
        ev.conns.find((c) => c.type === "disconnected"),
        "a disconnected event",
      ).at - stoppedAt;
    assert.ok(closedMs <= intervalMs + timeoutMs + 1000, `outbound connection closed ${Math.round(closedMs)} ms after SIGSTOP`);
    assert.ok(closedMs >= timeoutMs - 100, `closed ${Math.round(closedMs)} ms after SIGSTOP: sooner than a PING can time out`);
    // Reported as failed: timed out, or closed when keepalive cut the connection first.
    const frozenCode = (await frozenAck).results[0]?.error?.code;
    assert.ok(frozenCode === ErrorCode.AckTimeout || frozenCode === ErrorCode.Closed, `frozen sendWithAck: ${frozenCode}`);

    // The next send dials the frozen peer: the kernel accepts TCP, TLS never answers.
    const deadBefore = ev.dead.length;
    const t0 = performance.now();
    void p.comm.send(dataMessage(101), to);
    await eventually(() => ev.dead.length > deadBefore, dialTimeoutMs + connTimeoutMs + 2000, "presumed dead");
    const dead = must(ev.dead[deadBefore], "a presumed-dead event");
    const deadMs = dead.at - t0;
    assert.ok(deadMs < dialTimeoutMs + connTimeoutMs, `presumed dead ${Math.round(deadMs)} ms after the send`);
    assert.equal(dead.error.code, ErrorCode.DialTimeout);

    // Thawed: reachable again.
    w.worker.kill("SIGCONT");
    const contAt = performance.now();
    let ok = false;
    for (let i = 0; i < 10 && !ok; i++) ok = (await ack(200 + i)).ackCount === 1;
    assert.ok(ok, "acknowledged after SIGCONT");
    const recoverMs = performance.now() - contAt;

    await sleep(300);
    sending = false;
    await fireAndForget;
    await p.close();
    await f.close();
    const fs = f.comm.stats();
    assert.equal(fs.sendBuffered, 0);
    assert.equal(
      fs.messagesSent + fs.dropped + fs.overflow,
      accepted,
      `accepted ${accepted} = sent ${fs.messagesSent} + dropped ${fs.dropped} + overflow ${fs.overflow}`,
    );
    await w.worker.call("exit").catch(() => {});
    await w.worker.exited;
    const seqs = w.worker.all("recv").map((e) => Number(e.seq));
    const counts = new Map<number, number>();
    for (const s of seqs) counts.set(s, (counts.get(s) ?? 0) + 1);
    assert.deepEqual(
      [...counts].filter(([, n]) => n > 1),
      [],
      "no duplicate delivery",
    );
    assert.deepEqual(
      [...acked].filter((s) => !counts.has(s)),
      [],
      "every acked message delivered",
    );
    const plain = seqs.filter((q) => q > 1_000_000);
    assert.ok(
      plain.every((q) => q <= 1_000_000 + accepted),
      "only sent messages delivered",
    );
    assert.ok(plain.length <= fs.messagesSent, `delivered ${plain.length} <= written ${fs.messagesSent}`);
    console.log(
      JSON.stringify({
        test: "sigstop-client-keepalive",
        intervalMs,
        timeoutMs,
        stopToOutboundClosedMs: Math.round(closedMs),
        closeCode: must(
          ev.conns.find((c) => c.type === "disconnected"),
          "a disconnected event",
        ).error?.code,
        sendToPresumedDeadMs: Math.round(deadMs),
        contToFirstAckMs: Math.round(recoverMs),
        acked: acked.size,
        delivered: seqs.length,
        fireAndForget: { accepted, sent: fs.messagesSent, dropped: fs.dropped, overflow: fs.overflow, delivered: plain.length },
        frozenSendWithAckError: frozenCode,
        frozenSendDeliveredAfterThaw: counts.has(100),
      }),
    );
  });

  it("server side: the PING watchdog closes the inbound connection within interval + timeout", async () => {
    const p = await startPeer({
      options: { serverKeepaliveIntervalMs: intervalMs, serverKeepaliveTimeoutMs: timeoutMs, dialTimeoutMs, connTimeoutMs },
    });
    closers.push(() => p.close());
    const ev = record(p);
    const received: number[] = [];
    void (async () => {
      for await (const m of p.comm.accept()) {
        if (m.message.content.case !== "dataMsg") continue;
        received.push(Number(m.message.content.value.payload?.seqNum ?? -1n));
        void m.ack();
      }
    })();
    // The frozen peer only dials (no listener), with Fabric's 60 s client keepalive.
    const wMaterial = createPeerMaterial({ mspId: "Org1MSP", ca: caFor("Org1MSP") });
    const w = await spawnWorker("frozen-client", {
      peers: [workerPeer(wMaterial, {})],
      options: { dialTimeoutMs, connTimeoutMs },
    });
    const wPkiHex = must(w.peers[0], "the worker's peer").pkiId;
    const toP = { endpoint: p.endpoint, pkiId: pkiIdHex(p.comm.pkiId) };
    const ackFrom = async (seq: number, ms = 3000) => {
      const from = w.worker.events.length;
      await w.worker.call("sendWithAck", { to: toP, seq, timeoutMs: ms });
      return w.worker.waitFor((e) => e.ev === "acked" && e.seq === seq, ms + 2000, `ack result ${seq}`, from);
    };
    for (let i = 1; i <= 20; i++) assert.equal((await ackFrom(i)).ok, true, `ack ${i} before the freeze`);
    await eventually(() => p.comm.connections().some((c) => pkiIdHex(c.pkiId) === wPkiHex), 2000, "inbound connection registered");
    await sleep(2 * (intervalMs + timeoutMs));
    assert.equal(ev.conns.filter((c) => c.type === "disconnected").length, 0, "a responsive peer's connection was closed");

    w.worker.kill("SIGSTOP");
    const stoppedAt = performance.now();
    // A message to the frozen peer on its inbound connection is not acknowledged.
    const toW = { endpoint: "", pkiId: new Uint8Array(Buffer.from(wPkiHex, "hex")) };
    const frozenAck = p.comm.sendWithAck(dataMessage(100), 1000, 1, toW);
    await eventually(
      () => ev.conns.some((c) => c.type === "disconnected"),
      intervalMs + timeoutMs + 3000,
      "watchdog to close the connection",
    );
    const closed = must(
      ev.conns.find((c) => c.type === "disconnected"),
      "a disconnected event",
    );
    const closedMs = closed.at - stoppedAt;
    assert.equal(closed.connection.direction, "inbound");
    assert.ok(closedMs <= intervalMs + timeoutMs + 1000, `inbound connection closed ${Math.round(closedMs)} ms after SIGSTOP`);
    assert.ok(closedMs >= timeoutMs - intervalMs, `closed ${Math.round(closedMs)} ms after SIGSTOP: sooner than a PING can time out`);
    assert.equal((await frozenAck).ackCount, 0);

    // Thawed: the peer finds its connection gone and re-dials on its next send.
    w.worker.kill("SIGCONT");
    const contAt = performance.now();
    let ok = false;
    for (let i = 0; i < 10 && !ok; i++) ok = (await ackFrom(200 + i)).ok === true;
    assert.ok(ok, "acknowledged after SIGCONT");
    const recoverMs = performance.now() - contAt;

    const acked = w.worker.all("acked", (e) => e.ok === true).map((e) => Number(e.seq));
    const failed = w.worker.all("acked", (e) => e.ok !== true).map((e) => String(e.code));
    await w.worker.call("exit").catch(() => {});
    const counts = new Map<number, number>();
    for (const s of received) counts.set(s, (counts.get(s) ?? 0) + 1);
    assert.deepEqual(
      [...counts].filter(([, n]) => n > 1),
      [],
      "no duplicate delivery",
    );
    assert.deepEqual(
      acked.filter((s) => !counts.has(s)),
      [],
      "every acked message delivered",
    );
    console.log(
      JSON.stringify({
        test: "sigstop-server-watchdog",
        intervalMs,
        timeoutMs,
        stopToInboundClosedMs: Math.round(closedMs),
        closeCode: closed.error?.code,
        contToFirstAckMs: Math.round(recoverMs),
        acked: acked.length,
        ackFailuresAfterThaw: failed,
        delivered: received.length,
      }),
    );
  });
});
