/**
 * `gossip-connect mesh` (what `npm start` runs): N gossip peers on loopback,
 * each a Fastify HTTP/2 server with the plugin and mutual TLS, identities
 * from a throwaway CA in a temporary folder; every peer sends to every other
 * continuously, and a live view shows what flows.
 */
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import type { Comm } from "../../core/comm.js";
import { gossipMessage } from "../../core/envelope.js";
import { pkiIdHex } from "../../core/identity.js";
import { DataMessageSchema, type GossipMessage, PayloadSchema } from "../../gen/gossip/message_pb.js";
import { declineMembershipEnvelope, type Membership } from "../../membership/index.js";
import { createCa, createPeerMaterial, type PeerMaterial } from "../../pki/certificates.js";
import { createGossipServer, type GossipFastifyInstance } from "../../server/create-server.js";
import { parseCommandLine, parseInteger } from "../args.js";
import type { Command } from "../command.js";
import { failure } from "../errors.js";
import { defaultFiles, identityOf, writeIdentity } from "../identity.js";
import { cliLogger, logLevelEnv } from "../logger.js";
import { type PeerRow, renderEvent, renderLine, renderTable, shortPki, TtyBlock, type ViewEvent } from "../mesh-view.js";

const mspId = "Org1MSP";
/** The package's bin script (src/cli/commands or dist/cli/commands are three levels below the root). */
const binPath = fileURLToPath(new URL("../../../bin/gossip-connect.js", import.meta.url));
/** Time the peers get to close on stop before we give up on them (Ctrl-C must finish within 2 s). */
const closeBudgetMs = 1500;
/**
 * Membership timings of the demo, shortened from Fabric's (alive every 5 s,
 * dead after 25 s, pull every 4 s) so that a leave and return shows in seconds.
 */
export const meshMembership = {
  aliveTimeIntervalMs: 500,
  aliveExpirationTimeoutMs: 2500,
  pullIntervalMs: 1000,
  digestWaitTimeMs: 200,
  requestWaitTimeMs: 300,
  responseWaitTimeMs: 400,
} as const;
/** The leave/return demo: the last peer leaves this long after start, and comes back this long after leaving. */
const churnLeaveS = 4;
const churnAwayS = 4;
/** A --duration that leaves time after the return to see every view revive it. */
const churnCheckS = churnLeaveS + churnAwayS + 3;

const usage = `Usage: gossip-connect mesh [--peers N] [--duration S] [--rate N] [--base-port PORT]

Starts a local gossip mesh on 127.0.0.1 (what 'npm start' runs): N peers,
each a Fastify HTTP/2 server with the gossip-connect plugin, mutual TLS and
Fabric's membership layer, identities of MSP ${mspId} from a throwaway CA
created in a temporary folder (removed on exit). peer2..N join through
peer1 (bootstrap). Every peer sends a data message --rate times a second to
every member alive in its membership view, over authenticated gossip
connections, and a live view shows per peer: short PKI-ID, endpoint, its
view (members alive/presumed dead), open connections (inbound/outbound),
messages sent and received per second, send-buffer overflows, presumed-dead
events, and how many peers it has heard from. On a terminal the view is
redrawn once a second; elsewhere (CI) one line per second is printed, plus
one line per membership change.

The last peer leaves ${churnLeaveS} s after start and comes back ${churnAwayS} s later (same
identity and port, a new incarnation): the others presume it dead, then see
it alive again (revived). The membership timings are shortened for the demo:
alive messages every ${meshMembership.aliveTimeIntervalMs} ms, presumed dead after ${meshMembership.aliveExpirationTimeoutMs / 1000} s of silence (Fabric:
5 s and 25 s). It also prints the curl, buf curl and grpcurl commands that
Ping a peer (over TLS, with certificates from the temporary folder).

Options:
  --peers N             number of peers, 2 to 16 (default 4)
  --duration S          stop by itself after S seconds (1 to 86400) and print a summary;
                        exit 0 only if every peer received messages from every other and,
                        with S >= ${churnCheckS}, every other peer saw the leaving peer die and revive
  --rate N              messages per second from each peer to each other peer, 1 to 50 (default 5)
  --base-port PORT      listen on PORT, PORT+1, ... (default: free ports picked by the system)
  --no-churn            no leave/return demo
  -h, --help            this help

Ctrl-C (SIGINT), SIGTERM or SIGHUP (the terminal closing) stops every peer
within 2 s, removes the temporary folder, prints the summary and exits 0. Logs (pino) go to stderr at level
'error' (set ${logLevelEnv}; the terminal view hides them unless set).

Exit codes: 0 stopped by a signal, or --duration elapsed with every pair of peers
            having exchanged messages (and the leave/return seen by all); 1 failure
            (a pair never exchanged, a view missed the leave or return, a port in
            use); 2 usage.

Example:
  npm start                               # same as: gossip-connect mesh
  npm start -- --peers 6 --duration 10`;

const options = {
  peers: { type: "string" },
  duration: { type: "string" },
  rate: { type: "string" },
  "base-port": { type: "string" },
  "no-churn": { type: "boolean" },
} as const;

interface MeshPeer {
  readonly index: number;
  readonly name: string;
  readonly material: PeerMaterial;
  readonly pkiId: string;
  endpoint: string;
  /** The running incarnation; undefined while the peer is away. */
  run: { readonly app: GossipFastifyInstance; readonly comm: Comm; readonly membership: Membership } | undefined;
  /** Messages received, by sender index (over every incarnation). */
  readonly receivedFrom: number[];
  last: { sent: number; received: number };
}

/** A data message, tagged CHAN_AND_ORG as Fabric's gossip layer requires (gossipMessage's default). */
function dataMessage(seq: bigint, data: Uint8Array): GossipMessage {
  return gossipMessage({
    nonce: seq,
    content: { case: "dataMsg", value: create(DataMessageSchema, { payload: create(PayloadSchema, { seqNum: seq, data }) }) },
  });
}

/** Quotes a path for a POSIX shell when it needs it. */
function sh(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`;
}

/** The commands that Ping `endpoint` with the operator's TLS files. */
export function pingCommands(endpoint: string, operatorDir: string): { curl: string; bufCurl: string; grpcurl: string; cli: string } {
  const ca = sh(join(operatorDir, defaultFiles.caCert));
  const cert = sh(join(operatorDir, defaultFiles.tlsClientCert));
  const key = sh(join(operatorDir, defaultFiles.tlsClientKey));
  return {
    curl: `curl --cacert ${ca} --cert ${cert} --key ${key} -H 'Content-Type: application/json' -d '{}' https://${endpoint}/gossip.Gossip/Ping`,
    bufCurl: `npx buf curl --protocol grpc --cacert ${ca} --cert ${cert} --key ${key} -d '{}' https://${endpoint}/gossip.Gossip/Ping`,
    grpcurl: `grpcurl -cacert ${ca} -cert ${cert} -key ${key} -d '{}' ${endpoint} gossip.Gossip/Ping`,
    cli: `node ${sh(binPath)} handshake ${endpoint} --identity ${sh(operatorDir)}`,
  };
}

export const meshCommand: Command = {
  name: "mesh",
  usage,
  jsonErrorKey: "result",
  async run(argv) {
    const { values: v, help } = parseCommandLine("mesh", argv, options, { min: 0, max: 0, names: "" });
    if (help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    const n = v.peers !== undefined ? parseInteger("--peers", v.peers, 2, 16, 4) : 4;
    const durationS = v.duration !== undefined ? parseInteger("--duration", v.duration, 1, 86_400, 12) : undefined;
    const rate = v.rate !== undefined ? parseInteger("--rate", v.rate, 1, 50, 5) : 5;
    const basePort = v["base-port"] !== undefined ? parseInteger("--base-port", v["base-port"], 1, 65535 - n + 1, 7051) : undefined;
    const churn = !v["no-churn"];
    const tty = process.stdout.isTTY === true;
    // A reader that goes away (`npm start | head`) stops the mesh like a signal, instead of crashing it.
    let stdoutGone: (() => void) | undefined;
    let stdoutClosed = false;
    const onStdoutError = () => {
      stdoutClosed = true;
      stdoutGone?.();
    };
    process.stdout.on("error", onStdoutError);
    const write = (s: string) => {
      if (!stdoutClosed) process.stdout.write(s);
    };
    const logger = cliLogger(tty ? "silent" : "error", { name: "gossip-connect-mesh" });

    // A signal kills a process that has no handler, and "exit" does not run then: from before the
    // temporary folder exists (so no signal can kill us between making it and handling signals), one
    // (even during setup) ends the run through stopAll. Ctrl-C reaches both npm and us, and npm
    // forwards it: the stop already in progress is bounded by closeBudgetMs, so later ones are ignored.
    let signalled: NodeJS.Signals | undefined;
    let onSignalled: ((signal: NodeJS.Signals) => void) | undefined;
    const catchSignal = (signal: NodeJS.Signals) => {
      if (signalled !== undefined) return;
      signalled = signal;
      onSignalled?.(signal);
    };
    process.on("SIGINT", catchSignal);
    process.on("SIGTERM", catchSignal);
    // Closing the terminal sends SIGHUP: without a handler it would leave the folder, the operator's TLS key in it.
    process.on("SIGHUP", catchSignal);

    const dir = mkdtempSync(join(tmpdir(), "gossip-connect-mesh-"));
    let removed = false;
    const removeDir = () => {
      if (removed) return;
      removed = true;
      rmSync(dir, { recursive: true, force: true });
    };
    // Last resort: whatever ends the process, the temporary folder goes.
    process.once("exit", removeDir);

    const peers: MeshPeer[] = [];
    const timers: NodeJS.Timeout[] = [];
    let block: TtyBlock | undefined;
    let stopping: Promise<void> | undefined;
    const stopAll = (): Promise<void> => {
      stopping ??= (async () => {
        for (const t of timers) clearInterval(t);
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.allSettled(peers.map((p) => p.run?.app.close())),
          new Promise<void>((r) => {
            timer = setTimeout(r, closeBudgetMs);
          }),
        ]);
        clearTimeout(timer);
        removeDir();
        block?.done();
      })();
      return stopping;
    };
    try {
      // Identities: one throwaway CA; one identity per peer; an operator identity for curl and the CLI.
      const ca = createCa({ commonName: "gossip-connect mesh CA", organization: mspId });
      const operatorDir = join(dir, "operator");
      writeIdentity(operatorDir, createPeerMaterial({ mspId, ca, commonName: "operator.org1msp" }), { writeCaKey: false });
      /** Time zero of the view and the demo: reset once every peer runs. */
      let started = Date.now();
      let launched = false;
      const events: ViewEvent[] = [];
      /** The joins while the mesh forms are many and expected; the logs show the changes after. */
      const notable = (e: ViewEvent) => e.type !== "joined" || (launched && e.atS > 2);
      const byPki = new Map<string, number>();
      /** Totals of closed incarnations: a restarted comm counts from 0. */
      const retired = { sent: 0, received: 0 };
      /** Starts (or restarts) peer `p` on `port`, joining through peer1 unless it is peer1. */
      const launch = async (p: MeshPeer, port: number): Promise<void> => {
        const { material, name } = p;
        const app = await createGossipServer({
          identity: {
            mspId,
            certificate: material.identity.certPem,
            privateKey: material.identity.keyPem,
            trustedRoots: { [mspId]: [ca.certPem] },
          },
          tls: { cert: material.tlsServer.certPem, key: material.tlsServer.keyPem, ca: ca.certPem },
          clientTls: { ca: ca.certPem, cert: material.tlsClient.certPem, key: material.tlsClient.keyPem },
          options: { drainTimeoutMs: 300, dialTimeoutMs: 2000 },
          loggerInstance: logger.child({ peer: name }),
          membership: { ...meshMembership, bootstrapPeers: p.index === 0 ? [] : [(peers[0] as MeshPeer).endpoint] },
        });
        try {
          await app.listen({ host: "127.0.0.1", port });
        } catch (e) {
          await app.close().catch(() => {});
          const code = (e as NodeJS.ErrnoException).code;
          throw code === "EADDRINUSE"
            ? failure(
                `port ${port} on 127.0.0.1 is already in use`,
                "stop the process that uses it, pick another --base-port, or omit --base-port",
                { cause: e },
              )
            : failure(`${name} cannot listen on 127.0.0.1:${port}: ${(e as Error).message}`, "omit --base-port to use free ports", {
                cause: e,
              });
        }
        const addr = app.server.address() as AddressInfo;
        const membership = app.gossipMembership;
        if (membership === null) {
          await app.close().catch(() => {});
          throw failure(`${name}: the membership layer did not start`, "report this as a bug");
        }
        p.endpoint = `127.0.0.1:${addr.port}`;
        p.run = { app, comm: app.gossip, membership };
        p.last = { sent: 0, received: 0 };
        const comm = app.gossip;
        void (async () => {
          // The screen spares decoding the alive duplicates membership's screen takes (this predicate rejects them anyway).
          for await (const m of comm.accept((m) => m.message.content.case === "dataMsg", declineMembershipEnvelope)) {
            const from = byPki.get(pkiIdHex(m.connection.pkiId));
            if (from !== undefined) p.receivedFrom[from] = (p.receivedFrom[from] ?? 0) + 1;
          }
        })();
        void (async () => {
          for await (const ev of membership.events) {
            if (ev.type === "updated") continue;
            const subject = byPki.get(ev.member.pkiIdHex);
            const e: ViewEvent = {
              atS: (Date.now() - started) / 1000,
              observer: name,
              subject: subject !== undefined ? (peers[subject] as MeshPeer).name : shortPki(ev.member.pkiIdHex),
              type: ev.type,
            };
            events.push(e);
            if (!tty && notable(e)) write(`${renderEvent(e)}\n`);
          }
        })();
      };
      for (let i = 0; i < n && signalled === undefined; i++) {
        const name = `peer${i + 1}`;
        const material = createPeerMaterial({ mspId, ca, commonName: `${name}.org1msp` });
        const pkiId = identityOf(material).pkiId;
        byPki.set(pkiId, i);
        const p: MeshPeer = {
          index: i,
          name,
          material,
          pkiId,
          endpoint: "",
          run: undefined,
          receivedFrom: new Array<number>(n).fill(0),
          last: { sent: 0, received: 0 },
        };
        peers.push(p);
        await launch(p, basePort !== undefined ? basePort + i : 0);
        // Setup is CPU work and promptly settled promises: without a turn of the event loop, a
        // signal would wait for every peer to start.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      if (signalled !== undefined) {
        await stopAll();
        write(`mesh stopped by ${signalled} while starting; temporary folder ${dir} removed\n`);
        return 0;
      }
      started = Date.now();
      launched = true;

      const first = peers[0] as MeshPeer;
      const cmds = pingCommands(first.endpoint, operatorDir);
      const header = [
        `gossip-connect mesh: ${n} peers on 127.0.0.1, mutual TLS, MSP ${mspId}, throwaway CA and identities in ${dir} (removed on exit)`,
        `Each peer sends ${rate} message(s)/s to every member alive in its membership view, over authenticated gossip connections.`,
        `Membership (Fabric's discovery) with shortened timings for this demo: alive messages every ${meshMembership.aliveTimeIntervalMs} ms, a peer is presumed dead after ${meshMembership.aliveExpirationTimeoutMs / 1000} s of silence (Fabric: 5 s, 25 s).`,
        churn
          ? `Leave/return demo: ${(peers[n - 1] as MeshPeer).name} leaves at ${churnLeaveS} s and comes back at ${churnLeaveS + churnAwayS} s (same identity and port, new incarnation): watch the views.`
          : "Leave/return demo off (--no-churn).",
        "",
        `Ping ${first.name} (${first.endpoint}) from another terminal:`,
        `  ${cmds.curl}`,
        `  ${cmds.bufCurl}`,
        `  ${cmds.grpcurl}`,
        `Authenticate to it with the gossip handshake:`,
        `  ${cmds.cli}`,
        "",
      ];
      write(`${header.join("\n")}\n`);

      // Traffic: each peer sends to all others, ticks spread over the interval.
      const intervalMs = Math.max(20, Math.round(1000 / rate));
      const data = new TextEncoder().encode("gossip-connect mesh");
      for (const p of peers) {
        let seq = 0n;
        const tick = () => {
          const run = p.run;
          if (run === undefined) return;
          // To the members its view holds alive: what a Fabric application picks from GetMembership().
          const targets = run.membership.alive().map((m) => ({ endpoint: m.internalEndpoint || m.endpoint, pkiId: m.pkiId }));
          seq++;
          void run.comm.send(dataMessage(seq, data), ...targets);
        };
        const startIn = Math.round((intervalMs * p.index) / n);
        timers.push(
          setTimeout(() => {
            tick();
            timers.push(setInterval(tick, intervalMs));
          }, startIn),
        );
      }

      // The leave/return demo: the last peer closes (no goodbye, as in Fabric) and restarts on its port.
      const churner = peers[n - 1] as MeshPeer;
      const churnLog: { leftAtS?: number; backAtS?: number; error?: string } = {};
      const stamp = (atS: number) => `[${atS.toFixed(1).padStart(5)}s]`;
      // Only when it can complete: a short --duration would end the demo half-way.
      if (churn && (durationS === undefined || durationS >= churnCheckS)) {
        timers.push(
          setTimeout(() => {
            const run = churner.run;
            if (run === undefined || stopping) return;
            churner.run = undefined;
            const s = run.comm.stats();
            retired.sent += s.messagesSent;
            retired.received += s.messagesReceived;
            churnLog.leftAtS = (Date.now() - started) / 1000;
            if (!tty) write(`${stamp(churnLog.leftAtS)} ${churner.name} leaves (its server closes, no goodbye)\n`);
            void run.app.close().catch(() => {});
            timers.push(
              setTimeout(() => {
                if (stopping) return;
                const port = Number(churner.endpoint.split(":")[1]);
                void launch(churner, port).then(
                  () => {
                    churnLog.backAtS = (Date.now() - started) / 1000;
                    // Stopped while it was starting: close it too.
                    if (stopping) void churner.run?.app.close().catch(() => {});
                    else if (!tty)
                      write(
                        `${stamp(churnLog.backAtS)} ${churner.name} comes back on ${churner.endpoint} (same identity, new incarnation)\n`,
                      );
                  },
                  (e: unknown) => {
                    churnLog.error = e instanceof Error ? e.message : String(e);
                  },
                );
              }, churnAwayS * 1000),
            );
          }, churnLeaveS * 1000),
        );
      }

      if (tty) block = new TtyBlock(write);
      const zero = { connections: { inbound: 0, outbound: 0 }, overflow: 0, presumedDead: 0 };
      const statsOf = (p: MeshPeer) => p.run?.comm.stats() ?? { ...zero, messagesSent: p.last.sent, messagesReceived: p.last.received };
      const rows = (): PeerRow[] =>
        peers.map((p) => {
          const s = statsOf(p);
          const row: PeerRow = {
            name: p.name,
            pkiId: p.pkiId,
            endpoint: p.endpoint,
            inbound: s.connections.inbound,
            outbound: s.connections.outbound,
            sentPerSecond: Math.max(0, s.messagesSent - p.last.sent),
            receivedPerSecond: Math.max(0, s.messagesReceived - p.last.received),
            overflow: s.overflow,
            presumedDead: s.presumedDead,
            heardFrom: p.receivedFrom.filter((c, j) => j !== p.index && c > 0).length,
            others: n - 1,
            up: p.run !== undefined,
            viewAlive: p.run?.membership.alive().length ?? 0,
            viewDead: p.run?.membership.dead().length ?? 0,
          };
          p.last = { sent: s.messagesSent, received: s.messagesReceived };
          return row;
        });
      const totals = () => {
        let { sent, received } = retired;
        for (const p of peers) {
          const s = p.run?.comm.stats();
          sent += s?.messagesSent ?? 0;
          received += s?.messagesReceived ?? 0;
        }
        return { sent, received };
      };
      const refresh = () => {
        const elapsed = Math.round((Date.now() - started) / 1000);
        if (block) block.draw(renderTable(rows(), elapsed, totals(), events.filter(notable).slice(-6)));
        else write(`${renderLine(rows(), elapsed)}\n`);
      };
      timers.push(setInterval(refresh, 1000));

      // Run until --duration or a signal.
      const reason = await new Promise<"duration" | "stdout closed" | NodeJS.Signals>((resolve) => {
        stdoutGone = () => resolve("stdout closed");
        if (stdoutClosed) stdoutGone();
        onSignalled = resolve;
        if (durationS !== undefined) timers.push(setTimeout(() => resolve("duration"), durationS * 1000));
      });
      const elapsedS = (Date.now() - started) / 1000;
      const finalTotals = totals();
      const finalStats = peers.map((p) => statsOf(p));
      const finalViews = peers.map((p) =>
        p.run ? `${p.name} ${p.run.membership.alive().length}/${p.run.membership.dead().length}` : `${p.name} away`,
      );
      await stopAll();

      // The leave/return demo, as each other peer's view saw it.
      const churnLines: string[] = [];
      const churnMissing: string[] = [];
      if (churn && churnLog.leftAtS !== undefined) {
        const left = churnLog.leftAtS;
        const back = churnLog.backAtS;
        const observers = peers.filter((p) => p !== churner);
        const seen = (o: MeshPeer, type: ViewEvent["type"], after: number) =>
          events.find((e) => e.observer === o.name && e.subject === churner.name && e.type === type && e.atS >= after);
        const died = observers.map((o) => ({ o, e: seen(o, "died", left) }));
        const revived = back === undefined ? [] : observers.map((o) => ({ o, e: seen(o, "revived", back) ?? seen(o, "joined", back) }));
        const list = (xs: { o: MeshPeer; e: ViewEvent | undefined }[]) =>
          xs.map(({ o, e }) => (e ? `${o.name} at ${e.atS.toFixed(1)} s` : `not ${o.name}`)).join(", ");
        churnLines.push(
          `leave/return: ${churner.name} left at ${left.toFixed(1)} s${back !== undefined ? ` and came back at ${back.toFixed(1)} s` : churnLog.error ? ` and could not come back (${churnLog.error})` : ", not back yet"}`,
          `  presumed dead by ${list(died)}`,
          ...(back !== undefined ? [`  alive again (revived) by ${list(revived)}`] : []),
        );
        if (durationS !== undefined && durationS >= churnCheckS) {
          for (const { o, e } of died) if (!e) churnMissing.push(`${o.name} never presumed ${churner.name} dead`);
          if (back === undefined) churnMissing.push(`${churner.name} did not come back`);
          for (const { o, e } of revived) if (!e) churnMissing.push(`${o.name} never saw ${churner.name} alive again`);
        }
      } else if (churn) {
        churnLines.push(`leave/return demo: not run (it needs --duration ${churnCheckS} or more)`);
      }

      // Summary.
      const missing: string[] = [];
      for (const p of peers) {
        for (const q of peers) {
          if (p !== q && (p.receivedFrom[q.index] ?? 0) === 0) missing.push(`${p.name} never received from ${q.name}`);
        }
      }
      const pairs = n * (n - 1);
      const names = peers.map((p) => p.name);
      const width = Math.max(8, ...names.map((s) => s.length + 2));
      const labelWidth = Math.max(...peers.map((p) => p.name.length + 10));
      const lines = [
        "",
        `mesh summary: ${n} peers for ${elapsedS.toFixed(1)} s (${reason === "duration" ? "--duration elapsed" : reason}); ` +
          `${pairs - missing.length}/${pairs} directed pairs exchanged messages; sent ${finalTotals.sent}, received ${finalTotals.received}, ` +
          `overflow ${finalStats.reduce((a, s) => a + s.overflow, 0)}, presumed dead ${finalStats.reduce((a, s) => a + s.presumedDead, 0)}`,
        "messages received (row: receiver, column: sender):",
        `  ${"".padEnd(labelWidth)}${names.map((s) => s.padStart(width)).join("")}`,
        ...peers.map(
          (p) =>
            `  ${`${p.name} ${shortPki(p.pkiId)}`.padEnd(labelWidth)}${p.receivedFrom.map((c, j) => (j === p.index ? "-" : String(c)).padStart(width)).join("")}`,
        ),
        ...missing.map((m) => `  missing: ${m}`),
        `membership views at the end (alive/presumed dead): ${finalViews.join(", ")}`,
        ...churnLines,
        ...churnMissing.map((m) => `  missing: ${m}`),
        `temporary folder ${dir} removed`,
      ];
      write(`${lines.join("\n")}\n`);
      if (reason !== "duration") return 0;
      if (missing.length > 0) {
        throw failure(
          `${missing.length} of ${pairs} directed pairs of peers never exchanged messages (${missing[0]})`,
          "raise --duration, or check the log (set GOSSIP_CONNECT_LOG_LEVEL=warn)",
        );
      }
      if (churnMissing.length > 0) {
        throw failure(
          `the leave/return demo was not seen by every view (${churnMissing[0]})`,
          "check the log (set GOSSIP_CONNECT_LOG_LEVEL=warn), or run with --no-churn",
        );
      }
      return 0;
    } finally {
      await stopAll();
      process.off("exit", removeDir);
      // catchSignal stays: a late second Ctrl-C must not kill the exit with the summary half-written.
    }
  },
};
