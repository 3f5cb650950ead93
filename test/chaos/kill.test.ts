// A peer process killed with SIGKILL in the middle of a stream of messages:
// the sender presumes it dead within dialTimeout + connTimeout of its next
// send, reconnects and delivers once the peer is back on the same port, and
// nothing is lost on the way: every sendWithAck that succeeded was delivered
// exactly once, and every message accepted by send() was written or counted.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PresumedDeadEvent } from "../../src/core/comm.js";
import { ErrorCode } from "../../src/core/errors.js";
import { bytesEqual } from "../../src/core/identity.js";
import { createPeerMaterial } from "../../src/pki/certificates.js";
import { must } from "../helpers/must.js";
import { caFor, cleanupAfter, dataMessage, eventually, startPeer, type TestPeer } from "../helpers/peers.js";
import { freePort, killAllWorkers, sleep, spawnWorker, type Worker, workerPeer } from "./workers.js";

const { closers } = cleanupAfter(killAllWorkers);

/** Fabric's defaults, so that the bound below is the documented one. */
const dialTimeoutMs = 3000;
const connTimeoutMs = 2000;

describe("SIGKILL of a peer mid-stream", () => {
  it("presumed dead on the next send, reconnects on restart, nothing acked is lost", async () => {
    const ca = caFor("Org1MSP");
    const wMaterial = createPeerMaterial({ mspId: "Org1MSP", ca });
    const port = await freePort();
    const wCfg = {
      peers: [workerPeer(wMaterial, {}, { listen: { host: "127.0.0.1", port } })],
      autoAck: true,
      reportEach: true,
    };
    // What each incarnation received, from its `recv` reports (written before each ack).
    const received: { seq: number; incarnation: number }[] = [];
    const track = (w: Worker, incarnation: number) => {
      for (const e of w.all("recv")) received.push({ seq: Number(e.seq), incarnation });
    };

    const first = await spawnWorker("w1", wCfg);
    const wPki = Buffer.from(must(first.peers[0], "w1's peer").pkiId, "hex");
    const to = { endpoint: `127.0.0.1:${port}`, pkiId: new Uint8Array(wPki) };

    const options = { dialTimeoutMs, connTimeoutMs };
    const s: TestPeer = await startPeer({ options }); // fire-and-forget sender
    closers.push(() => s.close());
    const a: TestPeer = await startPeer({ options }); // sendWithAck sender
    closers.push(() => a.close());
    const dead: (PresumedDeadEvent & { at: number })[] = [];
    void (async () => {
      for await (const d of s.comm.presumedDead) dead.push({ ...d, at: performance.now() });
    })();

    // --- traffic, then SIGKILL while it flows ------------------------------
    let sendSeq = 0;
    let accepted = 0;
    let ackSeq = 1_000_000;
    const acked = new Set<number>();
    const ackFailed = new Map<string, number>();
    let inFlight = 0;
    let running = true;
    const sendWithAck = (seq: number) => {
      inFlight++;
      return a.comm.sendWithAck(dataMessage(seq), 2000, 1, to).then((r) => {
        inFlight--;
        if (r.ackCount === 1) acked.add(seq);
        else {
          const code = r.results[0]?.error?.code ?? "none";
          ackFailed.set(code, (ackFailed.get(code) ?? 0) + 1);
        }
        return r.ackCount === 1;
      });
    };
    const traffic = (async () => {
      for (let i = 0; i < 4000 && running; i++) {
        accepted++;
        void s.comm.send(dataMessage(++sendSeq), to);
        if (inFlight < 8) void sendWithAck(++ackSeq);
        await sleep(2);
      }
    })();
    await first.worker.waitFor((e) => e.ev === "recv" && Number(e.seq) > 100, 20_000, "100 messages received");
    await first.worker.waitFor((e) => e.ev === "recv" && Number(e.seq) > 1_000_050, 20_000, "50 acked messages received");
    const killedAt = performance.now();
    first.worker.kill("SIGKILL");
    await sleep(300); // sends go on while the sender finds out
    running = false;
    await traffic;
    await first.worker.exited;
    track(first.worker, 1);
    const sentBeforeProbe = sendSeq;

    // The broken connection is gone, and every dial started in the window has settled.
    await eventually(() => s.comm.connections().length === 0, 5000, "sender's connection to the killed peer to close");
    await eventually(() => s.comm.stats().sendBuffered === 0 && inFlight === 0, 5000, "sends in the kill window to settle");
    const deadInWindow = dead.length;
    const windowCodes = [...new Set(dead.map((d) => d.error.code))];

    // --- the next send: presumed dead within dialTimeout + connTimeout ------
    const t0 = performance.now();
    accepted++;
    void s.comm.send(dataMessage(++sendSeq), to);
    await eventually(() => dead.length > deadInWindow, dialTimeoutMs + connTimeoutMs + 2000, "presumed-dead after the next send");
    const ev = must(dead[deadInWindow], "a presumed-dead event");
    const detectMs = ev.at - t0;
    assert.ok(bytesEqual(ev.pkiId, to.pkiId), "presumed-dead names the killed peer");
    assert.ok(detectMs < dialTimeoutMs + connTimeoutMs, `presumed dead ${Math.round(detectMs)} ms after the send`);
    assert.ok(
      [ErrorCode.DialFailed, ErrorCode.DialTimeout, ErrorCode.PingFailed].includes(ev.error.code),
      `presumed dead with ${ev.error.code}`,
    );

    // --- restart on the same port: reconnects and delivers -------------------
    const second = await spawnWorker("w2", wCfg);
    assert.equal(must(second.peers[0], "w2's peer").endpoint, `127.0.0.1:${port}`);
    const restartedAt = performance.now();
    let recovered = false;
    for (let i = 0; i < 10 && !recovered; i++) recovered = await sendWithAck(++ackSeq);
    const recoverMs = performance.now() - restartedAt;
    assert.ok(recovered, "a sendWithAck succeeded after the restart");
    // The fire-and-forget sender reconnects on its next send too.
    const reconnectAt = performance.now();
    accepted++;
    void s.comm.send(dataMessage(++sendSeq), to);
    const firstAfter = sendSeq;
    await second.worker.waitFor((e) => e.ev === "recv" && Number(e.seq) === firstAfter, 10_000, "the first send after the restart");
    const sendReconnectMs = performance.now() - reconnectAt;
    // Then 50 more, paced; each is delivered or counted as overflow (drop policy).
    const overflowBefore = s.comm.stats().overflow;
    for (let i = 0; i < 50; i++) {
      accepted++;
      void s.comm.send(dataMessage(++sendSeq), to);
      await sleep(2);
    }
    const last = sendSeq;
    await eventually(
      () =>
        second.worker.all("recv", (e) => Number(e.seq) > firstAfter && Number(e.seq) <= last).length +
          s.comm.stats().overflow -
          overflowBefore ===
        50,
      10_000,
      "the 50 sends after the restart to be delivered or counted",
    );

    // --- accounting ---------------------------------------------------------
    await s.close();
    await a.close();
    const st = s.comm.stats();
    assert.equal(st.sendBuffered, 0);
    assert.equal(
      st.messagesSent + st.dropped + st.overflow,
      accepted,
      `accepted ${accepted} = sent ${st.messagesSent} + dropped ${st.dropped} + overflow ${st.overflow}`,
    );
    await second.worker.call("exit").catch(() => {});
    await second.worker.exited;
    track(second.worker, 2);

    const bySeq = new Map<number, number>();
    for (const r of received) bySeq.set(r.seq, (bySeq.get(r.seq) ?? 0) + 1);
    const dups = [...bySeq].filter(([, n]) => n > 1);
    assert.deepEqual(dups, [], "no message delivered twice");
    const missingAcked = [...acked].filter((q) => !bySeq.has(q));
    assert.deepEqual(missingAcked, [], "every acked message was delivered");
    const plain = received.filter((r) => r.seq < 1_000_000);
    assert.ok(
      plain.every((r) => r.seq >= 1 && r.seq <= sendSeq),
      "only sent messages were delivered",
    );
    assert.ok(plain.length <= st.messagesSent, `delivered ${plain.length} <= written ${st.messagesSent}`);

    console.log(
      JSON.stringify({
        test: "sigkill",
        receivedBeforeKill: received.filter((r) => r.incarnation === 1).length,
        sentBeforeProbe,
        presumedDeadInKillWindow: deadInWindow,
        windowCodes,
        killToExitMs: Math.round((first.worker.exitedAt ?? 0) - killedAt),
        nextSendToPresumedDeadMs: Math.round(detectMs),
        presumedDeadCode: ev.error.code,
        restartToFirstAckMs: Math.round(recoverMs),
        firstSendAfterRestartDeliveredMs: Math.round(sendReconnectMs),
        acked: acked.size,
        ackFailures: Object.fromEntries(ackFailed),
        accepted,
        sender: { sent: st.messagesSent, dropped: st.dropped, overflow: st.overflow },
        delivered: received.length,
      }),
    );
  });
});
