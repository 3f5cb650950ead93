// A network partition between two peers, each in a network namespace this
// test creates (veth pair 10.77.0.1 <-> 10.77.0.2):
// 1. the link is cut (one end set down: the other end keeps its route and
//    blackholes packets, as a real partition does) and restored: both sides
//    find the dead connection by keepalive (client PINGs on the dialer,
//    the server watchdog on the listener), a send during the cut is presumed
//    dead within dialTimeout + connTimeout, and traffic resumes after the
//    restore with nothing acknowledged lost and every send accounted for;
// 2. an impaired link (tc netem loss + delay, or, where the kernel has no
//    netem, a token bucket with a shallow queue that tail-drops and queues):
//    every sendWithAck still gets through, exactly once.
// Skipped, with the reason, where network namespaces are not permitted.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { PeerOptions } from "../../src/grpc/config.js";
import { createPeerMaterial } from "../../src/pki/certificates.js";
import { must } from "../helpers/must.js";
import { caFor } from "../helpers/peers.js";
import type { Target } from "./peer-worker.js";
import { killAllWorkers, type Ready, sh, sleep, spawnWorker, type Worker, workerPeer } from "./workers.js";

const tag = `${process.pid}`;
const nsA = `gcchaosA-${tag}`;
const nsB = `gcchaosB-${tag}`;
const vA = `gcA${tag}`.slice(0, 15);
const vB = `gcB${tag}`.slice(0, 15);
const ipA = "10.77.0.1";
const ipB = "10.77.0.2";
let skipReason: string | undefined;

const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Namespaces and veth ends of earlier runs whose process is gone (a run killed before its after hook). */
function removeStaleNamespaces(): void {
  const list = sh("ip", ["netns", "list"]);
  for (const line of list.ok ? list.out.split("\n") : []) {
    const m = /^(gcchaos[AB]-(\d+))\b/.exec(line.trim());
    if (m?.[1] && !pidAlive(Number(m[2]))) sh("ip", ["netns", "del", m[1]]);
  }
  const links = sh("ip", ["-o", "link", "show"]);
  for (const line of links.ok ? links.out.split("\n") : []) {
    const m = /^\d+: (gc[AB](\d+))[@:]/.exec(line);
    if (m?.[1] && !pidAlive(Number(m[2]))) sh("ip", ["link", "del", m[1]]);
  }
}

function teardown(): void {
  sh("ip", ["netns", "del", nsA]);
  sh("ip", ["netns", "del", nsB]);
  sh("ip", ["link", "del", vA]);
}

before(() => {
  removeStaleNamespaces();
  const probe = sh("ip", ["netns", "add", nsA]);
  if (!probe.ok) {
    skipReason = `network namespaces not permitted here (ip netns add: ${probe.out})`;
    return;
  }
  const steps: string[][] = [
    ["netns", "add", nsB],
    ["link", "add", vA, "type", "veth", "peer", "name", vB],
    ["link", "set", vA, "netns", nsA],
    ["link", "set", vB, "netns", nsB],
    ["-n", nsA, "addr", "add", `${ipA}/24`, "dev", vA],
    ["-n", nsB, "addr", "add", `${ipB}/24`, "dev", vB],
    ["-n", nsA, "link", "set", "lo", "up"],
    ["-n", nsB, "link", "set", "lo", "up"],
    ["-n", nsA, "link", "set", vA, "up"],
    ["-n", nsB, "link", "set", vB, "up"],
  ];
  for (const s of steps) {
    const r = sh("ip", s);
    if (!r.ok) {
      skipReason = `could not set up the veth pair (ip ${s.join(" ")}: ${r.out})`;
      teardown();
      return;
    }
  }
  const ping = sh("ip", ["netns", "exec", nsA, "ping", "-c", "1", "-W", "2", ipB]);
  if (!ping.ok && !/not found|No such file/.test(ping.out)) {
    skipReason = `the veth pair does not carry traffic (${ping.out})`;
    teardown();
  }
});

after(async () => {
  await killAllWorkers();
  teardown();
});

/**
 * Starts a worker in each namespace: A with two peers that dial B (peer 0
 * sends fire-and-forget, peer 1 sends with acks, so that each one's
 * accounting is exact), B with one peer that receives and acknowledges.
 */
async function startPair(options: PeerOptions): Promise<{ a: Ready; b: Ready; toB: Target }> {
  const ca = caFor("Org1MSP");
  const mA = createPeerMaterial({ mspId: "Org1MSP", ca, altNames: [ipA] });
  const mA1 = createPeerMaterial({ mspId: "Org1MSP", ca, altNames: [ipA] });
  const mB = createPeerMaterial({ mspId: "Org1MSP", ca, altNames: [ipB] });
  const b = await spawnWorker(
    "nsB-peer",
    { peers: [workerPeer(mB, {}, { listen: { host: ipB, port: 7051 } })], options, autoAck: true, reportEach: true },
    { netns: nsB },
  );
  const a = await spawnWorker(
    "nsA-peer",
    {
      peers: [workerPeer(mA, {}, { listen: { host: ipA, port: 7051 } }), workerPeer(mA1, {}, { listen: { host: ipA, port: 7052 } })],
      options,
      autoAck: true,
      reportEach: true,
    },
    { netns: nsA },
  );
  return { a, b, toB: must(b.peers[0], "B's peer") };
}

/** Sequence numbers delivered more than once, and acked ones never delivered. */
async function exactlyOnce(
  sender: Worker,
  receiver: Worker,
): Promise<{ dups: number[]; missing: number[]; delivered: number; acked: number }> {
  // A round trip to the receiver: its answer follows every `recv` line it wrote
  // before, on the same pipe (the sender's `acked` line may be read first).
  await receiver.call("stats");
  const counts = new Map<number, number>();
  for (const e of receiver.all("recv")) counts.set(Number(e.seq), (counts.get(Number(e.seq)) ?? 0) + 1);
  const acked = sender.all("acked", (e) => e.ok === true).map((e) => Number(e.seq));
  return {
    dups: [...counts].filter(([, n]) => n > 1).map(([s]) => s),
    missing: acked.filter((s) => !counts.has(s)),
    delivered: [...counts.values()].reduce((x, y) => x + y, 0),
    acked: acked.length,
  };
}

interface StopResult {
  ms: number;
  peers: { accepted: number; messagesSent: number; dropped: number; overflow: number; sendBuffered: number }[];
}

describe("network partition between namespaces", () => {
  it("link cut: both sides detect it by keepalive, a send is presumed dead, traffic resumes after the restore", async (t) => {
    if (skipReason) return t.skip(skipReason);
    const ka = { interval: 500, timeout: 1000 };
    const dialTimeoutMs = 1000;
    const connTimeoutMs = 1000;
    const { a, b, toB } = await startPair({
      clientKeepaliveIntervalMs: ka.interval,
      clientKeepaliveTimeoutMs: ka.timeout,
      serverKeepaliveIntervalMs: ka.interval,
      serverKeepaliveTimeoutMs: ka.timeout,
      dialTimeoutMs,
      connTimeoutMs,
    });
    let seq = 0;
    let running = true;
    let paused = false;
    // Traffic: one sendWithAck and two sends every 25 ms, bounded in count.
    const traffic = (async () => {
      for (let i = 0; i < 2000 && running; i++) {
        if (!paused) {
          await a.worker.call("sendWithAck", { peer: 1, to: toB, seq: ++seq, timeoutMs: 1500 });
          await a.worker.call("send", { peer: 0, to: toB, seqs: [1_000_000 + ++seq, 1_000_000 + ++seq] });
        }
        await sleep(25);
      }
    })();
    await a.worker.waitFor((e) => e.ev === "acked" && e.ok === true && Number(e.seq) > 60, 15_000, "acks before the cut");
    const connectedA = a.worker.all("conn", (e) => e.type === "connected").length;
    assert.ok(connectedA >= 1, "A connected to B");

    // --- cut ------------------------------------------------------------------
    const aFrom = a.worker.events.length;
    const bFrom = b.worker.events.length;
    const cutAt = performance.now();
    assert.ok(sh("ip", ["-n", nsB, "link", "set", vB, "down"]).ok);
    const bound = ka.interval + ka.timeout + 1500;
    const down = (e: Record<string, unknown>) => e.ev === "conn" && e.type === "disconnected";
    const aClosed = await Promise.all(
      [0, 1].map((p) => a.worker.waitFor((e) => down(e) && e.peer === p, bound + 2000, `A${p} to drop its connection`, aFrom)),
    );
    await b.worker.waitFor(() => b.worker.events.slice(bFrom).filter(down).length >= 2, bound + 2000, "B to drop both connections", bFrom);
    const bClosed = b.worker.events.slice(bFrom).filter(down);
    const aMs = aClosed.map((e) => e.at - cutAt);
    const bMs = bClosed.map((e) => e.at - cutAt);
    assert.ok(aClosed.every((e) => e.direction === "outbound"));
    assert.ok(bClosed.every((e) => e.direction === "inbound"));
    assert.ok(
      Math.max(...aMs) < bound,
      `A (dialer, client keepalive) dropped its connections ${aMs.map(Math.round).join(", ")} ms after the cut`,
    );
    assert.ok(
      Math.max(...bMs) < bound,
      `B (listener, watchdog) dropped its connections ${bMs.map(Math.round).join(", ")} ms after the cut`,
    );

    // A send across the cut: the SYN is blackholed, the dial times out.
    paused = true;
    await sleep(dialTimeoutMs + connTimeoutMs + 500); // dials started by the traffic settle
    const deadFrom = a.worker.events.length;
    const sendAt = performance.now();
    await a.worker.call("send", { peer: 0, to: toB, seqs: [1_000_000 + ++seq] });
    const dead = await a.worker.waitFor(
      (e) => e.ev === "dead" && e.peer === 0,
      dialTimeoutMs + connTimeoutMs + 2000,
      "presumed dead",
      deadFrom,
    );
    const deadMs = dead.at - sendAt;
    assert.ok(deadMs < dialTimeoutMs + connTimeoutMs, `presumed dead ${Math.round(deadMs)} ms after the send`);
    const failedDuringCut = a.worker.all("acked", (e) => e.ok !== true).length;
    assert.ok(failedDuringCut > 0, "sendWithAck during the cut reported failures");

    // --- restore --------------------------------------------------------------
    const lastSeqBeforeRestore = seq;
    assert.ok(sh("ip", ["-n", nsB, "link", "set", vB, "up"]).ok);
    const restoredAt = performance.now();
    paused = false;
    const firstOk = await a.worker.waitFor(
      (e) => e.ev === "acked" && e.ok === true && Number(e.seq) > lastSeqBeforeRestore,
      15_000,
      "an ack after the restore",
    );
    const recoverMs = firstOk.at - restoredAt;
    await sleep(500);
    running = false;
    await traffic;
    // Every sendWithAck settles (1.5 s timeout), then A stops and flushes.
    await sleep(2000);
    const stopped = await a.worker.call<StopResult>("stop");
    const st = must(stopped.peers[0], "A's first peer's stats");
    assert.equal(st.sendBuffered, 0);
    assert.equal(
      st.messagesSent + st.dropped + st.overflow,
      st.accepted,
      `accepted ${st.accepted} = sent ${st.messagesSent} + dropped ${st.dropped} + overflow ${st.overflow}`,
    );
    const plainDelivered = b.worker.all("recv", (e) => Number(e.seq) > 1_000_000).length;
    assert.ok(plainDelivered <= st.messagesSent, `delivered ${plainDelivered} <= written ${st.messagesSent}`);
    const check = await exactlyOnce(a.worker, b.worker);
    assert.deepEqual(check.dups, [], "no duplicate delivery");
    assert.deepEqual(check.missing, [], "every acked message delivered");
    const dialFailures = a.worker.all("dead").length;
    console.log(
      JSON.stringify({
        test: "partition-cut",
        keepalive: ka,
        cutToDialerClosedMs: aMs.map(Math.round),
        cutToListenerClosedMs: bMs.map(Math.round),
        closeCodes: [...aClosed, ...bClosed].map((e) => e.code),
        sendToPresumedDeadMs: Math.round(deadMs),
        presumedDeadCode: dead.code,
        presumedDeadEvents: dialFailures,
        sendWithAckFailedDuringCut: failedDuringCut,
        restoreToFirstAckMs: Math.round(recoverMs),
        acked: check.acked,
        delivered: check.delivered,
        sender: st,
        plainDelivered,
      }),
    );
    await killAllWorkers();
  });

  it("impaired link (loss and delay): every sendWithAck gets through exactly once", async (t) => {
    if (skipReason) return t.skip(skipReason);
    // netem where the kernel has it; else a token bucket whose shallow queue tail-drops and delays.
    const netem = ["root", "netem", "loss", "5%", "delay", "30ms", "10ms"];
    const tbf = ["root", "tbf", "rate", "4mbit", "burst", "8kb", "limit", "12kb"];
    let impairment = "netem loss 5% delay 30ms±10ms";
    if (!sh("ip", ["netns", "exec", nsA, "tc", "qdisc", "add", "dev", vA, ...netem]).ok) {
      impairment = "tbf rate 4mbit burst 8kb limit 12kb (no netem in this kernel)";
      assert.ok(sh("ip", ["netns", "exec", nsA, "tc", "qdisc", "add", "dev", vA, ...tbf]).ok, "tc tbf on A");
      assert.ok(sh("ip", ["netns", "exec", nsB, "tc", "qdisc", "add", "dev", vB, ...tbf]).ok, "tc tbf on B");
    } else {
      assert.ok(sh("ip", ["netns", "exec", nsB, "tc", "qdisc", "add", "dev", vB, ...netem]).ok, "tc netem on B");
    }
    try {
      // Keepalive generous enough for retransmission backoff on a lossy link.
      const { a, b, toB } = await startPair({
        clientKeepaliveIntervalMs: 2000,
        clientKeepaliveTimeoutMs: 8000,
        serverKeepaliveIntervalMs: 2000,
        serverKeepaliveTimeoutMs: 8000,
      });
      const n = 150; // peer 1 of A sends with acks
      const concurrency = 15;
      let next = 1;
      // Bounded: n sendWithAck, at most `concurrency` in flight, 4 KiB each.
      const started = performance.now();
      while (next <= n) {
        const inFlight = next - 1 - a.worker.all("acked").length;
        if (inFlight < concurrency)
          await a.worker.call("sendWithAck", { peer: 1, to: toB, seq: next++, timeoutMs: 15_000, payloadBytes: 4096 });
        else await sleep(5);
        assert.ok(performance.now() - started < 60_000, "sendWithAck loop took over 60 s");
      }
      await a.worker.waitFor(() => a.worker.all("acked").length === n, 20_000, "every sendWithAck to settle");
      const elapsedMs = performance.now() - started;
      const results = a.worker.all("acked");
      const failed = results.filter((e) => e.ok !== true).map((e) => `${String(e.seq)}:${String(e.code)}`);
      assert.deepEqual(failed, [], "every sendWithAck succeeded");
      const check = await exactlyOnce(a.worker, b.worker);
      assert.deepEqual(check.dups, [], "no duplicate delivery");
      assert.deepEqual(check.missing, [], "every acked message delivered");
      const lat = results.map((e) => Number(e.ms)).sort((x, y) => x - y);
      const drops = (ns: string, dev: string) => {
        const m = /dropped (\d+)/.exec(sh("ip", ["netns", "exec", ns, "tc", "-s", "qdisc", "show", "dev", dev]).out);
        return m ? Number(m[1]) : -1;
      };
      const dropped = { a: drops(nsA, vA), b: drops(nsB, vB) };
      // The impairment was real: packets were dropped (netem counts its losses as drops too).
      assert.ok(dropped.a + dropped.b > 0, `the link dropped packets (${JSON.stringify(dropped)})`);
      assert.equal(a.worker.all("conn", (e) => e.type === "disconnected").length, 0, "the connection survived the impairment");
      console.log(
        JSON.stringify({
          test: "partition-impaired",
          impairment,
          n,
          concurrency,
          payloadBytes: 4096,
          elapsedMs: Math.round(elapsedMs),
          ackMs: { p50: lat[Math.floor(lat.length / 2)], p95: lat[Math.floor(lat.length * 0.95)], max: lat[lat.length - 1] },
          packetsDropped: dropped,
          delivered: check.delivered,
        }),
      );
    } finally {
      await killAllWorkers();
      sh("ip", ["netns", "exec", nsA, "tc", "qdisc", "del", "dev", vA, "root"]);
      sh("ip", ["netns", "exec", nsB, "tc", "qdisc", "del", "dev", vB, "root"]);
    }
  });
});
