/**
 * A child process hosting gossip peers for the fault and soak tests, so that a
 * test can SIGKILL, SIGSTOP or move a peer into a network namespace.
 *
 * Run: node --import tsx test/chaos/peer-worker.ts (see workers.ts).
 * Protocol: JSON lines. The first stdin line is a {@link WorkerConfig}; later
 * lines are commands `{ id, op, ... }` answered by `{ id, ok, result | error }`
 * on stdout. Events go to stdout as `{ ev, t, ... }` (t: Date.now()).
 * Received data messages are reported (`recv`) before they are acknowledged,
 * and stdout is a pipe (synchronous on Linux), so a report survives a SIGKILL
 * that follows the ack.
 */
import { readdirSync } from "node:fs";
import { createInterface } from "node:readline";
import { PeerDialer } from "../../src/client/dialer.js";
import { Comm } from "../../src/core/comm.js";
import { ErrorCode } from "../../src/core/errors.js";
import { pkiIdHex } from "../../src/core/identity.js";
import type { Logger } from "../../src/core/logger.js";
import { X509CryptoService } from "../../src/core/x509-crypto.js";
import type { PeerOptions } from "../../src/grpc/config.js";
import { createGossipServer, type GossipFastifyInstance } from "../../src/server/create-server.js";
import { must } from "../helpers/must.js";
import { dataMessage } from "../helpers/peers.js";

/** PEM pair. */
export interface Pem {
  readonly certPem: string;
  readonly keyPem: string;
}

/** One peer of a worker. */
export interface WorkerPeerConfig {
  readonly mspId: string;
  readonly identity: Pem;
  /** TLS server pair (absent: h2c). */
  readonly tlsServer?: Pem;
  /** TLS client pair (absent: h2c). */
  readonly tlsClient?: Pem;
  /** CA certificates trusted per MSP ID. */
  readonly trustedRoots: Readonly<Record<string, readonly string[]>>;
  /** Listen here; without `listen`, the peer only dials (a bare Comm). */
  readonly listen?: { readonly host: string; readonly port: number };
}

export interface WorkerConfig {
  readonly peers: readonly WorkerPeerConfig[];
  readonly options?: PeerOptions;
  /** Acknowledge every received data message (for senders' sendWithAck), or only those with seqNum 0 (the soak's). */
  readonly autoAck?: boolean | "seq0";
  /** Report every received data message as a `recv` event (else only count). */
  readonly reportEach?: boolean;
}

/** A destination: endpoint and hex PKI-ID. */
export interface Target {
  readonly endpoint: string;
  readonly pkiId: string;
}

interface Peer {
  readonly index: number;
  readonly comm: Comm;
  readonly app?: GossipFastifyInstance;
  endpoint: string;
  /** Messages handed to send() (fire-and-forget), for the accounting check. */
  accepted: number;
  /** Received data messages with seqNum 0 (the soak's acknowledged ones). */
  received0: number;
  /** Per sender PKI-ID: last seqNum received and counters. */
  readonly from: Map<string, { last: bigint; count: number; outOfOrder: number }>;
}

const errors: string[] = [];
const out = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ t: Date.now(), ...o })}\n`);
const unexpected = (what: string) => {
  if (errors.length < 50) errors.push(what);
  out({ ev: "error", what });
};
process.on("uncaughtException", (e) => {
  unexpected(`uncaught: ${e instanceof Error ? e.stack : String(e)}`);
  process.exit(70);
});
process.on("unhandledRejection", (e) => {
  unexpected(`unhandled rejection: ${e instanceof Error ? e.stack : String(e)}`);
  process.exit(70);
});
// The parent went away: do not linger.
process.stdin.on("end", () => process.exit(0));

/** A logger that counts warn and error lines as unexpected (the soak runs without faults). */
function countingLogger(peer: number, bindings: Record<string, unknown> = {}): Logger {
  const log = (level: string) => (obj: object, msg: string) =>
    out({ ev: "log", level, peer, msg, ...bindings, ...(obj as Record<string, unknown>) });
  return {
    debug() {},
    info() {},
    warn: log("warn"),
    error: log("error"),
    child: (b) => countingLogger(peer, { ...bindings, ...b }),
  };
}

async function startPeer(index: number, p: WorkerPeerConfig, cfg: WorkerConfig): Promise<Peer> {
  const identity = { mspId: p.mspId, certificate: p.identity.certPem, privateKey: p.identity.keyPem, trustedRoots: p.trustedRoots };
  const cas = [...new Set(Object.values(p.trustedRoots).flat())];
  const clientTls = p.tlsClient ? { ca: cas, cert: p.tlsClient.certPem, key: p.tlsClient.keyPem } : undefined;
  const options = cfg.options ?? {};
  const logger = countingLogger(index);
  let comm: Comm;
  let app: GossipFastifyInstance | undefined;
  let endpoint = "";
  if (p.listen) {
    app = await createGossipServer({
      identity,
      clientTls,
      options,
      logger,
      reflection: false,
      tls: p.tlsServer ? { cert: p.tlsServer.certPem, key: p.tlsServer.keyPem, ca: cas } : undefined,
    });
    await app.listen({ host: p.listen.host, port: p.listen.port });
    const addr = app.server.address();
    if (addr === null || typeof addr === "string") throw new Error("no address");
    endpoint = `${addr.address}:${addr.port}`;
    comm = app.gossip;
  } else {
    comm = new Comm({ crypto: new X509CryptoService(identity), dialer: new PeerDialer({ tls: clientTls, options }), options, logger });
  }
  const peer: Peer = { index, comm, app, endpoint, accepted: 0, received0: 0, from: new Map() };
  void (async () => {
    for await (const m of comm.accept()) {
      if (m.message.content.case !== "dataMsg") continue;
      const seq = m.message.content.value.payload?.seqNum ?? -1n;
      const from = pkiIdHex(m.connection.pkiId);
      let f = peer.from.get(from);
      if (!f) {
        f = { last: -1n, count: 0, outOfOrder: 0 };
        peer.from.set(from, f);
      }
      f.count++;
      if (cfg.reportEach) {
        out({ ev: "recv", peer: index, seq: seq.toString(), from });
      } else {
        // Soak: per-sender sequence numbers increase; a repeat or a step back is a fault.
        if (seq !== 0n) {
          if (seq <= f.last) f.outOfOrder++;
          f.last = seq;
        }
      }
      if (seq === 0n) peer.received0++;
      if (cfg.autoAck === true || (cfg.autoAck === "seq0" && seq === 0n)) void m.ack();
    }
  })();
  void (async () => {
    for await (const d of comm.presumedDead) {
      out({ ev: "dead", peer: index, pkiId: pkiIdHex(d.pkiId), endpoint: d.endpoint, code: d.error.code, msg: d.error.message });
    }
  })();
  void (async () => {
    for await (const s of comm.identitySwitch) {
      out({ ev: "switch", peer: index, oldPkiId: pkiIdHex(s.oldPkiId), newPkiId: pkiIdHex(s.newPkiId), endpoint: s.endpoint });
    }
  })();
  void (async () => {
    for await (const c of comm.connectionEvents) {
      out({
        ev: "conn",
        peer: index,
        type: c.type,
        direction: c.connection.direction,
        pkiId: pkiIdHex(c.connection.pkiId),
        code: c.error?.code,
      });
    }
  })();
  return peer;
}

const toPeer = (t: Target) => ({ endpoint: t.endpoint, pkiId: Buffer.from(t.pkiId, "hex") });

/** Open file descriptors of this process. */
const fdCount = () => readdirSync("/proc/self/fd").length;

/**
 * In-flight requests (a socket write or shutdown, a close, a lookup, a file
 * operation) and timers: they come and go with the load at the sample, where
 * handles (sockets, servers) are what the process keeps.
 */
const isTransient = (kind: string) =>
  kind === "Timeout" || kind === "Immediate" || /^(WriteWrap|ShutdownWrap|ConnectWrap|CloseReq)$|Req(Wrap|Callback|Promise)?$/.test(kind);

function resources() {
  (globalThis as { gc?: () => void }).gc?.();
  const mem = process.memoryUsage();
  const active = process.getActiveResourcesInfo();
  const kinds: Record<string, number> = {};
  let transient = 0;
  for (const kind of active) {
    kinds[kind] = (kinds[kind] ?? 0) + 1;
    if (isTransient(kind)) transient++;
  }
  return { heap: mem.heapUsed, rss: mem.rss, handles: active.length - transient, transient, kinds, fds: fdCount() };
}

function statsOf(peer: Peer) {
  const s = peer.comm.stats();
  let received = 0;
  let outOfOrder = 0;
  for (const f of peer.from.values()) {
    received += f.count;
    outOfOrder += f.outOfOrder;
  }
  return {
    ...s,
    accepted: peer.accepted,
    received,
    received0: peer.received0,
    outOfOrder,
    senders: peer.from.size,
    connectionsNow: peer.comm.connections().length,
  };
}

/** Full-mesh traffic for the soak: every peer sends to every other target each tick. */
async function mesh(peers: Peer[], targets: Target[], durationMs: number, tickMs: number, sampleMs: number, payloadBytes: number) {
  const payload = new Uint8Array(payloadBytes);
  const senders = peers.map((p) => ({ p, seq: 0n }));
  const started = Date.now();
  const samples: ReturnType<typeof resources>[] = [];
  let acks = 0;
  let ackFailures = 0;
  const ackErrors: string[] = [];
  let nextSample = started;
  let tick = 0;
  // Bounded: at most durationMs / tickMs + 1 ticks.
  const maxTicks = Math.ceil(durationMs / tickMs) + 1;
  while (Date.now() - started < durationMs && tick < maxTicks) {
    tick++;
    for (const sender of senders) {
      const p = sender.p;
      const mine = targets.filter((t) => t.endpoint !== p.endpoint);
      const s = ++sender.seq;
      const msg = dataMessage(s, payload);
      p.accepted += mine.length;
      void p.comm.send(msg, ...mine.map(toPeer));
    }
    // One acknowledged message per tick from a rotating peer to a rotating target.
    const p = must(peers[tick % peers.length], "a local peer");
    const mine = targets.filter((t) => t.endpoint !== p.endpoint);
    const t = must(mine[tick % mine.length], `a target other than ${p.endpoint}`);
    void p.comm.sendWithAck(dataMessage(0), 5000, 1, toPeer(t)).then((r) => {
      if (r.ackCount === 1) acks++;
      else {
        ackFailures++;
        if (ackErrors.length < 10) ackErrors.push(r.results.map((x) => x.error?.message ?? "").join(";"));
      }
    });
    if (Date.now() >= nextSample) {
      samples.push(resources());
      out({ ev: "sample", ...samples[samples.length - 1] });
      nextSample += sampleMs;
    }
    await new Promise((r) => setTimeout(r, tickMs));
  }
  // Let in-flight acks settle (bounded by their 5 s timeout).
  await new Promise((r) => setTimeout(r, 1000));
  return { ticks: tick, samples, acks, ackFailures, ackErrors, peers: peers.map(statsOf), errors };
}

async function main(): Promise<void> {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  const it = lines[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) return;
  const cfg = JSON.parse(first.value) as WorkerConfig;
  const peers: Peer[] = [];
  for (const [i, p] of cfg.peers.entries()) peers.push(await startPeer(i, p, cfg));
  out({ ev: "ready", pid: process.pid, peers: peers.map((p) => ({ endpoint: p.endpoint, pkiId: pkiIdHex(p.comm.pkiId) })) });

  for await (const line of lines) {
    if (line.trim() === "") continue;
    const cmd = JSON.parse(line) as { id: number; op: string; [k: string]: unknown };
    const reply = (result: unknown) => out({ id: cmd.id, ok: true, result });
    const fail = (e: unknown) => out({ id: cmd.id, ok: false, error: e instanceof Error ? e.message : String(e) });
    // The local peer a send names (default the first); only the sends need one.
    const namedPeer = () => must(peers[(cmd.peer as number | undefined) ?? 0], `local peer ${String(cmd.peer ?? 0)}`);
    try {
      switch (cmd.op) {
        case "send": {
          // Fire-and-forget sends of data messages with the given seqNums.
          const peer = namedPeer();
          const to = toPeer(cmd.to as Target);
          const payload = new Uint8Array((cmd.payloadBytes as number | undefined) ?? 0);
          for (const s of cmd.seqs as number[]) {
            peer.accepted++;
            void peer.comm.send(dataMessage(s, payload), to);
          }
          reply(null);
          break;
        }
        case "sendWithAck": {
          const peer = namedPeer();
          const to = toPeer(cmd.to as Target);
          const seq = cmd.seq as number;
          const payload = new Uint8Array((cmd.payloadBytes as number | undefined) ?? 0);
          const t0 = performance.now();
          void peer.comm.sendWithAck(dataMessage(seq, payload), (cmd.timeoutMs as number | undefined) ?? 3000, 1, to).then((r) => {
            const e = r.results[0]?.error;
            const ms = Math.round(performance.now() - t0);
            out({ ev: "acked", peer: peer.index, seq, ok: r.ackCount === 1, code: e?.code, msg: e?.message, ms });
          });
          reply(null);
          break;
        }
        case "connect": {
          // Connects every local peer to every target (one sendWithAck each, seqNum 0),
          // `concurrency` at a time in random order: a ramp instead of a thundering herd.
          const targets = cmd.targets as Target[];
          const concurrency = (cmd.concurrency as number | undefined) ?? 4;
          const timeoutMs = (cmd.timeoutMs as number | undefined) ?? 30_000;
          const jobs: [Peer, Target][] = [];
          for (const p of peers) for (const t of targets) if (t.endpoint !== p.endpoint) jobs.push([p, t]);
          for (let i = jobs.length - 1; i > 0; i--) {
            const j = Math.floor(Math.random() * (i + 1));
            [jobs[i], jobs[j]] = [must(jobs[j], `connect job ${j}`), must(jobs[i], `connect job ${i}`)];
          }
          const t0 = performance.now();
          let next = 0;
          let ok = 0;
          const failures: string[] = [];
          // A connection closed under the ack (the loser of a simultaneous dial, A -> B
          // while B -> A) is a reported failure, not a loss: retried, and counted.
          const retried: string[] = [];
          await Promise.all(
            Array.from({ length: concurrency }, async () => {
              while (next < jobs.length) {
                const [p, t] = must(jobs[next++], "a connect job");
                for (let attempt = 1; attempt <= 3; attempt++) {
                  const r = await p.comm.sendWithAck(dataMessage(0), timeoutMs, 1, toPeer(t));
                  if (r.ackCount === 1) {
                    ok++;
                    break;
                  }
                  if (r.results[0]?.error?.code === ErrorCode.Closed && attempt < 3) {
                    retried.push(`${t.endpoint}: ${r.toString()}`);
                    continue;
                  }
                  failures.push(`${t.endpoint}: ${r.toString()}`);
                  break;
                }
              }
            }),
          );
          reply({ ok, failures, retried, ms: performance.now() - t0 });
          break;
        }
        case "load": {
          // Background load from every peer: even peers sendWithAck, odd peers send(); `rounds` rounds.
          const to = toPeer(cmd.to as Target);
          const rounds = cmd.rounds as number;
          const intervalMs = cmd.intervalMs as number;
          const timeoutMs = (cmd.timeoutMs as number | undefined) ?? 3000;
          const seqBase = cmd.seqBase as number;
          void (async () => {
            const pending: Promise<void>[] = [];
            for (let r = 0; r < rounds; r++) {
              for (const p of peers) {
                const seq = seqBase + r * 1000 + p.index;
                if (p.index % 2 === 0) {
                  pending.push(
                    p.comm.sendWithAck(dataMessage(seq), timeoutMs, 1, to).then((res) => {
                      const e = res.results[0]?.error;
                      out({ ev: "acked", peer: p.index, seq, ok: res.ackCount === 1, code: e?.code });
                    }),
                  );
                } else {
                  p.accepted++;
                  void p.comm.send(dataMessage(seq), to);
                }
              }
              await new Promise((res) => setTimeout(res, intervalMs));
            }
            await Promise.all(pending);
            out({ ev: "loadDone" });
          })();
          reply(null);
          break;
        }
        case "stats":
          reply({ peers: peers.map(statsOf), resources: resources(), errors });
          break;
        case "mesh": {
          const r = await mesh(
            peers,
            cmd.targets as Target[],
            cmd.durationMs as number,
            (cmd.tickMs as number | undefined) ?? 250,
            (cmd.sampleMs as number | undefined) ?? 2000,
            (cmd.payloadBytes as number | undefined) ?? 256,
          );
          reply(r);
          break;
        }
        case "stop": {
          const t0 = performance.now();
          await Promise.all(peers.map((p) => (p.app ? p.app.close() : p.comm.stop())));
          reply({ ms: performance.now() - t0, peers: peers.map(statsOf) });
          break;
        }
        case "exit":
          reply(null);
          process.exit(0);
          break;
        default:
          fail(new Error(`unknown op ${cmd.op}`));
      }
    } catch (e) {
      fail(e);
    }
  }
}

void main();
