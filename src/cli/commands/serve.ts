/** `gossip-connect serve`: one gossip peer, a Fastify HTTP/2 server with the plugin. */
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import type { Comm } from "../../core/comm.js";
import { ErrorCode } from "../../core/errors.js";
import { bytesEqual, pkiIdHex, type PkiId } from "../../core/identity.js";
import { EmptySchema, GossipMessage_Tag, GossipMessageSchema } from "../../gen/gossip/message_pb.js";
import { createGossipServer, type GossipFastifyInstance } from "../../server/create-server.js";
import { type HostPort, listOf, parseCommandLine, parseHostPort } from "../args.js";
import type { Command } from "../command.js";
import { type CliError, explain, failure } from "../errors.js";
import { devMspId, ephemeralIdentity, loadIdentity, loadTrust, peerSecurity } from "../identity.js";
import { cliLogger, logLevelEnv } from "../logger.js";
import { type Fields, processOutput } from "../output.js";

/** Interval of the keep-connected message to bootstrap peers. */
export const heartbeatIntervalMs = 5000;
const closeTimeoutMs = 5000;

const usage = `Usage: gossip-connect serve [--listen HOST:PORT] [--identity DIR] [--trust-ca FILE,...] [--no-tls]
                            [--bootstrap HOST:PORT,...] [--metrics] [--auto-ack] [--json]

Runs one gossip peer: a Fastify HTTP/2 server with the gossip-connect plugin
(Gossip.GossipStream and Ping over gRPC, Connect and gRPC-web, server
reflection), TLS by default, requesting client certificates as Fabric does.
Runs until SIGINT or SIGTERM, then closes every connection (exit 0).

Options:
  --listen HOST:PORT    address to listen on (default 127.0.0.1:7051; port 0 picks a free one)
  --identity DIR        our identity (from 'gossip-connect init'). Without it the peer runs
                        with an ephemeral in-memory development identity (MSP ${devMspId},
                        throwaway CA): enough for Ping, probes and curl, but no other peer
                        trusts it, so use an identity directory for real gossip
  --trust-ca FILE,...   CA certificates (PEM) trusted for TLS and for identities; repeatable.
                        FILE's MSP ID is its organization (O=); write MSPID=FILE to set it
  --no-tls              serve and dial cleartext HTTP/2 (h2c)
  --bootstrap HOST:PORT,...
                        peers to connect to at start: each is authenticated with a deep
                        probe (Comm.handshake; the command fails if one is unreachable), then
                        kept connected by an empty GossipMessage (tag EMPTY, content 'empty')
                        sent every ${heartbeatIntervalMs / 1000} s, which also redials a lost connection
  --metrics             serve Prometheus metrics (gossip_comm_*) at /metrics on the same port
  --auto-ack            acknowledge every received message (for 'gossip-connect send --ack')
  --json                print one JSON line per event on stdout (see below)
  -h, --help            this help

Events (stdout; with --json one object per line, "event" first, then "time"):
  started        endpoint, pkiId, mspId, tls, ephemeral, metrics (URL or null)
  connected      pkiId, endpoint, direction (inbound|outbound)
  disconnected   pkiId, endpoint, direction, code and error when it failed
  received       from (PKI-ID), endpoint, nonce (decimal string), contentType (the
                 GossipMessage content case, e.g. dataMsg), payloadSize (bytes of the
                 serialized GossipMessage), signed
  presumedDead   pkiId, endpoint, code, error
  identitySwitch oldPkiId, newPkiId, endpoint
  error          code, message, fix
  stopped        (after SIGINT/SIGTERM, when every connection is closed)
Logs (pino JSON) go to stderr; set ${logLevelEnv} (default info).

Exit codes: 0 stopped by a signal, 1 failure (unusable identity files, port in use,
            unreachable bootstrap peer), 2 usage.

Example:
  gossip-connect serve --listen 127.0.0.1:7051 --identity ./peer1 --auto-ack --json`;

const options = {
  listen: { type: "string" },
  identity: { type: "string" },
  "trust-ca": { type: "string", multiple: true },
  "no-tls": { type: "boolean" },
  bootstrap: { type: "string", multiple: true },
  metrics: { type: "boolean" },
  "auto-ack": { type: "boolean" },
  json: { type: "boolean" },
} as const;

function listenError(e: unknown, at: HostPort): CliError {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case "EADDRINUSE":
      return failure(`port ${at.port} on ${at.host} is already in use`, `stop the process that uses it, or pick another port with --listen ${at.host}:PORT (port 0 picks a free one)`, { cause: e });
    case "EADDRNOTAVAIL":
      return failure(`${at.host} is not an address of this machine`, "listen on 127.0.0.1, 0.0.0.0, or an address of this machine", { cause: e });
    case "EACCES":
      return failure(`not allowed to listen on port ${at.port}`, "ports below 1024 need privileges; pick a port from 1024 up", { cause: e });
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return failure(`cannot resolve the --listen host ${at.host}`, "use an IP address such as 127.0.0.1", { cause: e });
    default:
      return failure(`cannot listen on ${at.endpoint}: ${(e as Error).message}`, "pick another --listen address", { cause: e });
  }
}

const heartbeat = create(GossipMessageSchema, { tag: GossipMessage_Tag.EMPTY, content: { case: "empty", value: create(EmptySchema) } });

export const serveCommand: Command = {
  name: "serve",
  usage,
  jsonErrorKey: "event",
  async run(argv) {
    const { values: v, help } = parseCommandLine("serve", argv, options, { min: 0, max: 0, names: "" });
    if (help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    const listen = parseHostPort("--listen", v.listen ?? "127.0.0.1:7051", true);
    const bootstrap = listOf(v.bootstrap).map((b) => parseHostPort("--bootstrap", b));
    const logger = cliLogger("info", { name: "gossip-connect" });
    const id = v.identity !== undefined ? loadIdentity(v.identity) : ephemeralIdentity();
    const trust = loadTrust(listOf(v["trust-ca"]));
    const tls = !v["no-tls"];
    const security = peerSecurity(id, trust, tls);
    const out = processOutput(v.json);
    const emit = (name: string, fields: Fields = {}) => out.record(name, { time: new Date().toISOString(), ...fields });

    let app: GossipFastifyInstance;
    try {
      app = await createGossipServer({
        identity: security.identity,
        tls: security.serverTls,
        clientTls: security.clientTls,
        metrics: v.metrics,
        loggerInstance: logger,
      });
    } catch (e) {
      throw failure(`cannot set up the peer: ${(e as Error).message}`, "check the --identity and --trust-ca files", { cause: e });
    }
    const comm = app.gossip;
    const pumps = startPumps(comm, emit, v["auto-ack"]);
    let heartbeatTimer: NodeJS.Timeout | undefined;
    const closers: (() => void)[] = [];
    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => {
      closing ??= (async () => {
        clearInterval(heartbeatTimer);
        for (const c of closers) c();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          app.close().catch(() => {}),
          new Promise<void>((r) => {
            timer = setTimeout(r, closeTimeoutMs);
          }),
        ]);
        clearTimeout(timer);
        await Promise.race([pumps, new Promise((r) => setTimeout(r, 100))]);
      })();
      return closing;
    };

    try {
      try {
        await app.listen({ host: listen.host, port: listen.port });
      } catch (e) {
        throw listenError(e, listen);
      }
      const addr = app.server.address() as AddressInfo;
      const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
      const endpoint = `${host}:${addr.port}`;
      emit("started", {
        endpoint,
        pkiId: id.pkiId,
        mspId: id.mspId,
        tls,
        ephemeral: id.dir === undefined,
        metrics: v.metrics ? `${tls ? "https" : "http"}://${endpoint}/metrics` : null,
      });

      // Bootstrap: authenticate each peer once (fatal when one fails), then keep it connected.
      const known = new Map<string, PkiId>();
      await Promise.all(
        bootstrap.map(async (b) => {
          try {
            known.set(b.endpoint, (await comm.handshake({ endpoint: b.endpoint })).pkiId);
          } catch (e) {
            const ce = explain(e, { endpoint: b.endpoint, noTls: !tls });
            throw failure(`bootstrap peer ${b.endpoint} is unusable: ${ce.problem}`, `${ce.fix}; or start without --bootstrap ${b.endpoint}`, { code: ce.code, cause: e });
          }
        }),
      );
      if (bootstrap.length > 0) {
        const stale = new Set<string>();
        void (async () => {
          for await (const ev of comm.presumedDead) {
            if (known.has(ev.endpoint) && ev.error.code === ErrorCode.UnexpectedPeer) stale.add(ev.endpoint);
          }
        })();
        void (async () => {
          for await (const ev of comm.identitySwitch) {
            const old = known.get(ev.endpoint);
            if (old !== undefined && bytesEqual(old, ev.oldPkiId)) known.set(ev.endpoint, ev.newPkiId);
          }
        })();
        const beat = () => {
          for (const b of bootstrap) {
            if (stale.delete(b.endpoint)) {
              // Another peer now answers there: learn who before sending to it.
              comm.handshake({ endpoint: b.endpoint }).then(
                (r) => known.set(b.endpoint, r.pkiId),
                (e: unknown) => {
                  const ce = explain(e, { endpoint: b.endpoint, noTls: !tls });
                  emit("error", { code: ce.code ?? "internal", message: `bootstrap peer ${b.endpoint}: ${ce.problem}`, fix: ce.fix });
                },
              );
              continue;
            }
            void comm.send(heartbeat, { endpoint: b.endpoint, pkiId: known.get(b.endpoint) });
          }
        };
        beat();
        heartbeatTimer = setInterval(beat, heartbeatIntervalMs);
      }

      // The comm reports refused handshakes only in its log and counters: surface them as events.
      let refusedSoFar = comm.stats().handshakeFailures;
      const refusals = setInterval(() => {
        const now = comm.stats().handshakeFailures;
        if (now > refusedSoFar) {
          emit("error", {
            code: "handshake_refused",
            message: `${now - refusedSoFar} gossip handshake(s) failed authentication in the last second`,
            fix: "see the log (stderr) for the address and reason; a peer whose CA we do not trust needs --trust-ca",
          });
        }
        refusedSoFar = now;
      }, 1000);
      closers.push(() => clearInterval(refusals));

      // Run until a signal.
      await new Promise<void>((resolve) => {
        // A reader that goes away (`serve --json | head`) stops the peer like a signal.
        process.stdout.on("error", () => resolve());
        const onSignal = (signal: NodeJS.Signals) => {
          logger.info({ signal }, "stopping");
          // Later signals (npm forwards Ctrl-C, which also reached us) must not cut the bounded close short.
          process.on("SIGINT", () => {});
          process.on("SIGTERM", () => {});
          resolve();
        };
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
      });
      await close();
      emit("stopped");
      return 0;
    } finally {
      await close();
    }
  },
};

/** Forwards the comm's event streams and received messages to `emit`; resolves when the comm stopped. */
function startPumps(comm: Comm, emit: (name: string, fields?: Fields) => void, autoAck: boolean): Promise<unknown> {
  const conns = (async () => {
    for await (const ev of comm.connectionEvents) {
      const c = ev.connection;
      emit(ev.type, {
        pkiId: pkiIdHex(c.pkiId),
        endpoint: c.endpoint,
        direction: c.direction,
        ...(ev.error ? { code: ev.error.code, error: ev.error.message } : {}),
      });
    }
  })();
  const dead = (async () => {
    for await (const ev of comm.presumedDead) {
      emit("presumedDead", { pkiId: pkiIdHex(ev.pkiId), endpoint: ev.endpoint, code: ev.error.code, error: ev.error.message });
    }
  })();
  const switches = (async () => {
    for await (const ev of comm.identitySwitch) {
      emit("identitySwitch", { oldPkiId: pkiIdHex(ev.oldPkiId), newPkiId: pkiIdHex(ev.newPkiId), endpoint: ev.endpoint });
    }
  })();
  const received = (async () => {
    for await (const m of comm.accept()) {
      emit("received", {
        from: pkiIdHex(m.connection.pkiId),
        endpoint: m.connection.endpoint,
        nonce: m.message.nonce,
        contentType: m.message.content.case ?? "none",
        payloadSize: m.envelope.payload.length,
        signed: m.envelope.signature.length > 0,
      });
      if (autoAck) await m.ack();
    }
  })();
  return Promise.allSettled([conns, dead, switches, received]);
}
