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
import { pkiIdFromHex, pkiIdHex, type RemotePeer } from "../../core/identity.js";
import { gossipMessage } from "../../core/envelope.js";
import { DataMessageSchema, type GossipMessage, PayloadSchema } from "../../gen/gossip/message_pb.js";
import { createCa, createPeerMaterial } from "../../pki/certificates.js";
import { createGossipServer, type GossipFastifyInstance } from "../../server/create-server.js";
import { parseCommandLine, parseInteger } from "../args.js";
import type { Command } from "../command.js";
import { failure } from "../errors.js";
import { defaultFiles, identityOf, writeIdentity } from "../identity.js";
import { cliLogger, logLevelEnv } from "../logger.js";
import { type PeerRow, renderLine, renderTable, shortPki, TtyBlock } from "../mesh-view.js";

const mspId = "Org1MSP";
/** The package's bin script (src/cli/commands or dist/cli/commands are three levels below the root). */
const binPath = fileURLToPath(new URL("../../../bin/gossip-connect.js", import.meta.url));
/** Time the peers get to close on stop before we give up on them (Ctrl-C must finish within 2 s). */
const closeBudgetMs = 1500;

const usage = `Usage: gossip-connect mesh [--peers N] [--duration S] [--rate N] [--base-port PORT]

Starts a local gossip mesh on 127.0.0.1 (what 'npm start' runs): N peers,
each a Fastify HTTP/2 server with the gossip-connect plugin and mutual TLS,
identities of MSP ${mspId} from a throwaway CA created in a temporary folder
(removed on exit). Every peer sends a data message to every other peer
--rate times a second over authenticated gossip connections, and a live
view shows per peer: short PKI-ID, endpoint, open connections (inbound/
outbound), messages sent and received per second, send-buffer overflows,
presumed-dead events, and how many peers it has heard from. On a terminal
the view is redrawn once a second; elsewhere (CI) one line per second is
printed. It also prints the curl, buf curl and grpcurl commands that Ping
a peer (over TLS, with certificates from the temporary folder).

Options:
  --peers N             number of peers, 2 to 16 (default 4)
  --duration S          stop by itself after S seconds (1 to 86400) and print a summary;
                        exit 0 only if every peer received messages from every other
  --rate N              messages per second from each peer to each other peer, 1 to 50 (default 5)
  --base-port PORT      listen on PORT, PORT+1, ... (default: free ports picked by the system)
  -h, --help            this help

Ctrl-C (SIGINT) or SIGTERM stops every peer within 2 s, removes the temporary
folder, prints the summary and exits 0. Logs (pino) go to stderr at level
'error' (set ${logLevelEnv}; the terminal view hides them unless set).

Exit codes: 0 stopped by a signal, or --duration elapsed with every pair of peers
            having exchanged messages; 1 failure (a pair never exchanged, a port
            in use); 2 usage.

Example:
  npm start                               # same as: gossip-connect mesh
  npm start -- --peers 6 --duration 10`;

const options = {
  peers: { type: "string" },
  duration: { type: "string" },
  rate: { type: "string" },
  "base-port": { type: "string" },
} as const;

interface MeshPeer {
  readonly index: number;
  readonly name: string;
  readonly app: GossipFastifyInstance;
  readonly comm: Comm;
  readonly endpoint: string;
  readonly pkiId: string;
  /** Messages received, by sender index. */
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
    const n = v.peers !== undefined ? parseInteger("--peers", v.peers, 2, 16) : 4;
    const durationS = v.duration !== undefined ? parseInteger("--duration", v.duration, 1, 86_400) : undefined;
    const rate = v.rate !== undefined ? parseInteger("--rate", v.rate, 1, 50) : 5;
    const basePort = v["base-port"] !== undefined ? parseInteger("--base-port", v["base-port"], 1, 65535 - n + 1) : undefined;
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
          Promise.allSettled(peers.map((p) => p.app.close())),
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
    // A second signal is common (Ctrl-C reaches both npm and us, and npm forwards it): the stop
    // already in progress is bounded by closeBudgetMs, so later signals are ignored.
    const ignoreSignal = () => {};

    try {
      // Identities: one throwaway CA; one identity per peer; an operator identity for curl and the CLI.
      const ca = createCa({ commonName: "gossip-connect mesh CA", organization: mspId });
      const operatorDir = join(dir, "operator");
      writeIdentity(operatorDir, createPeerMaterial({ mspId, ca, commonName: "operator.org1msp" }), { writeCaKey: false });
      for (let i = 0; i < n; i++) {
        const name = `peer${i + 1}`;
        const material = createPeerMaterial({ mspId, ca, commonName: `${name}.org1msp` });
        const app = await createGossipServer({
          identity: { mspId, certificate: material.identity.certPem, privateKey: material.identity.keyPem, trustedRoots: { [mspId]: [ca.certPem] } },
          tls: { cert: material.tlsServer.certPem, key: material.tlsServer.keyPem, ca: ca.certPem },
          clientTls: { ca: ca.certPem, cert: material.tlsClient.certPem, key: material.tlsClient.keyPem },
          options: { drainTimeoutMs: 300, dialTimeoutMs: 2000 },
          loggerInstance: logger.child({ peer: name }),
        });
        const port = basePort !== undefined ? basePort + i : 0;
        try {
          await app.listen({ host: "127.0.0.1", port });
        } catch (e) {
          await app.close().catch(() => {});
          const code = (e as NodeJS.ErrnoException).code;
          throw code === "EADDRINUSE"
            ? failure(`port ${port} on 127.0.0.1 is already in use`, "stop the process that uses it, pick another --base-port, or omit --base-port", { cause: e })
            : failure(`${name} cannot listen on 127.0.0.1:${port}: ${(e as Error).message}`, "omit --base-port to use free ports", { cause: e });
        }
        const addr = app.server.address() as AddressInfo;
        peers.push({
          index: i,
          name,
          app,
          comm: app.gossip,
          endpoint: `127.0.0.1:${addr.port}`,
          pkiId: identityOf(material).pkiId,
          receivedFrom: new Array<number>(n).fill(0),
          last: { sent: 0, received: 0 },
        });
      }

      const byPki = new Map(peers.map((p) => [p.pkiId, p.index]));
      for (const p of peers) {
        void (async () => {
          for await (const m of p.comm.accept((m) => m.message.content.case === "dataMsg")) {
            const from = byPki.get(pkiIdHex(m.connection.pkiId));
            if (from !== undefined) p.receivedFrom[from] = (p.receivedFrom[from] ?? 0) + 1;
          }
        })();
      }

      const first = peers[0] as MeshPeer;
      const cmds = pingCommands(first.endpoint, operatorDir);
      const header = [
        `gossip-connect mesh: ${n} peers on 127.0.0.1, mutual TLS, MSP ${mspId}, throwaway CA and identities in ${dir} (removed on exit)`,
        `Each peer sends ${rate} message(s)/s to every other peer over authenticated gossip connections.`,
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
        const others: RemotePeer[] = peers.filter((o) => o !== p).map((o) => ({ endpoint: o.endpoint, pkiId: pkiIdFromHex(o.pkiId) }));
        let seq = 0n;
        const tick = () => {
          seq++;
          void p.comm.send(dataMessage(seq, data), ...others);
        };
        const startIn = Math.round((intervalMs * p.index) / n);
        timers.push(
          setTimeout(() => {
            tick();
            timers.push(setInterval(tick, intervalMs));
          }, startIn),
        );
      }

      const started = Date.now();
      if (tty) block = new TtyBlock(write);
      const rows = (): PeerRow[] =>
        peers.map((p) => {
          const s = p.comm.stats();
          const row: PeerRow = {
            name: p.name,
            pkiId: p.pkiId,
            endpoint: p.endpoint,
            inbound: s.connections.inbound,
            outbound: s.connections.outbound,
            sentPerSecond: s.messagesSent - p.last.sent,
            receivedPerSecond: s.messagesReceived - p.last.received,
            overflow: s.overflow,
            presumedDead: s.presumedDead,
            heardFrom: p.receivedFrom.filter((c, j) => j !== p.index && c > 0).length,
            others: n - 1,
          };
          p.last = { sent: s.messagesSent, received: s.messagesReceived };
          return row;
        });
      const totals = () => {
        let sent = 0;
        let received = 0;
        for (const p of peers) {
          const s = p.comm.stats();
          sent += s.messagesSent;
          received += s.messagesReceived;
        }
        return { sent, received };
      };
      const refresh = () => {
        const elapsed = Math.round((Date.now() - started) / 1000);
        if (block) block.draw(renderTable(rows(), elapsed, totals()));
        else write(`${renderLine(rows(), elapsed)}\n`);
      };
      timers.push(setInterval(refresh, 1000));

      // Run until --duration or a signal.
      const reason = await new Promise<"duration" | "stdout closed" | NodeJS.Signals>((resolve) => {
        stdoutGone = () => resolve("stdout closed");
        if (stdoutClosed) stdoutGone();
        const onSignal = (signal: NodeJS.Signals) => resolve(signal);
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        if (durationS !== undefined) timers.push(setTimeout(() => resolve("duration"), durationS * 1000));
      });
      process.on("SIGINT", ignoreSignal);
      process.on("SIGTERM", ignoreSignal);
      const elapsedS = (Date.now() - started) / 1000;
      const finalTotals = totals();
      const finalStats = peers.map((p) => p.comm.stats());
      await stopAll();

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
        `temporary folder ${dir} removed`,
      ];
      write(`${lines.join("\n")}\n`);
      if (reason !== "duration") return 0;
      if (missing.length > 0) {
        throw failure(`${missing.length} of ${pairs} directed pairs of peers never exchanged messages (${missing[0]})`, "raise --duration, or check the log (set GOSSIP_CONNECT_LOG_LEVEL=warn)");
      }
      return 0;
    } finally {
      await stopAll();
      process.off("exit", removeDir);
    }
  },
};
