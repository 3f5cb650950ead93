/** `gossip-connect serve`: one gossip peer, a Fastify HTTP/2 server with the plugin. */
import type { AddressInfo } from "node:net";
import type { Comm } from "../../core/comm.js";
import { pkiIdHex } from "../../core/identity.js";
import { declineMembershipEnvelope, isMembershipMessage, type Member, type Membership } from "../../membership/index.js";
import { createGossipServer, type GossipFastifyInstance } from "../../server/create-server.js";
import { type HostPort, listOf, parseCommandLine, parseHostPort, parseInteger } from "../args.js";
import type { Command } from "../command.js";
import { type CliError, failure, usageError } from "../errors.js";
import { devMspId, ephemeralIdentity, loadIdentity, loadTrust, peerSecurity } from "../identity.js";
import { cliLogger, logLevelEnv } from "../logger.js";
import { type Fields, processOutput } from "../output.js";

const closeTimeoutMs = 5000;

/** The signals that stop the peer gracefully (SIGHUP: the terminal closing). */
const stopSignals: readonly NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

const usage = `Usage: gossip-connect serve [--listen HOST:PORT] [--identity DIR] [--trust-ca FILE,...] [--no-tls]
                            [--bootstrap HOST:PORT,...] [--anchor HOST:PORT[@MSPID],...] [--external-endpoint HOST:PORT]
                            [--internal-endpoint HOST:PORT] [--alive-interval MS] [--alive-expiration MS]
                            [--max-unauthenticated-streams N] [--metrics] [--auto-ack] [--json]

Runs one gossip peer: a Fastify HTTP/2 server with the gossip-connect plugin
(Gossip.GossipStream and Ping over gRPC, Connect and gRPC-web, server
reflection), TLS by default, requesting client certificates as Fabric does,
and Fabric's discovery (membership) layer: it keeps a view of the peers that
are alive and dead, answers membership requests ('gossip-connect members'),
and joins a network through its bootstrap peers. Runs until SIGINT, SIGTERM
or SIGHUP (the terminal closing), then closes every connection (exit 0).

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
                        peers of our organization to join through (Fabric's peer.gossip.bootstrap):
                        each is authenticated with a deep probe and sent a membership request,
                        retried in the background while it is unreachable (see the log)
  --anchor HOST:PORT[@MSPID],...
                        peers of any organization to join through, as Fabric connects to a
                        channel's anchor peers (another organization's needs --external-endpoint);
                        with @MSPID (the organization the channel config names), another
                        organization's anchor is skipped without a dial when we have no external
                        endpoint, and one claimed to be ours must prove it in the handshake
  --external-endpoint HOST:PORT
                        our endpoint for other organizations (peer.gossip.externalEndpoint);
                        without it the peer is invisible outside its organization
  --internal-endpoint HOST:PORT
                        our endpoint for our organization (peer.gossip.endpoint; default: the
                        listen address, IPv4 or a host name)
  --alive-interval MS   alive message period (peer.gossip.aliveTimeInterval, default 5000)
  --alive-expiration MS silence after which a member is dead (peer.gossip.aliveExpirationTimeout,
                        default 5 x --alive-interval)
  --max-unauthenticated-streams N
                        streams admitted at once whose handshake has not finished (default 256;
                        32 per remote address). Joins beyond it are refused and retried only on
                        Fabric's 25 s reconnect: raise it on a bootstrap peer that hundreds of
                        peers join at once
  --metrics             serve Prometheus metrics (gossip_comm_*, gossip_membership_*) at /metrics
  --auto-ack            acknowledge every received message (for 'gossip-connect send --ack')
  --json                print one JSON line per event on stdout (see below)
  -h, --help            this help

Events (stdout; with --json one object per line, "event" first, then "time"):
  started        endpoint, pkiId, mspId, tls, ephemeral, metrics (URL or null),
                 internalEndpoint, externalEndpoint, bootstrap (list)
  joined         a member became known and alive: pkiId, organization, endpoint,
  died             internalEndpoint, incNum, seqNum (decimal strings); died: presumed
  revived          dead (silent, or unreachable); revived: alive again (newer alive message)
  removed        a dead member was forgotten
  connected      pkiId, endpoint, direction (inbound|outbound)
  disconnected   pkiId, endpoint, direction, code and error when it failed
  received       a message other than membership traffic: from (PKI-ID), endpoint, nonce
                 (decimal string), contentType (the GossipMessage content case, e.g.
                 dataMsg), payloadSize (bytes of the serialized GossipMessage), signed
  presumedDead   pkiId, endpoint, code, error
  identitySwitch oldPkiId, newPkiId, endpoint
  error          code, message, fix
  stopped        (after SIGINT/SIGTERM/SIGHUP, when every connection is closed)
Logs (pino JSON) go to stderr; set ${logLevelEnv} (default info).

Exit codes: 0 stopped by a signal, 1 failure (unusable identity files, port in use), 2 usage.

Example:
  gossip-connect serve --listen 127.0.0.1:7051 --identity ./peer1 --json
  gossip-connect serve --listen 127.0.0.1:7052 --identity ./peer2 --bootstrap 127.0.0.1:7051 --json`;

const options = {
  listen: { type: "string" },
  identity: { type: "string" },
  "trust-ca": { type: "string", multiple: true },
  "no-tls": { type: "boolean" },
  bootstrap: { type: "string", multiple: true },
  anchor: { type: "string", multiple: true },
  "external-endpoint": { type: "string" },
  "internal-endpoint": { type: "string" },
  "alive-interval": { type: "string" },
  "alive-expiration": { type: "string" },
  "max-unauthenticated-streams": { type: "string" },
  metrics: { type: "boolean" },
  "auto-ack": { type: "boolean" },
  json: { type: "boolean" },
} as const;

function listenError(e: unknown, at: HostPort): CliError {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case "EADDRINUSE":
      return failure(
        `port ${at.port} on ${at.host} is already in use`,
        `stop the process that uses it, or pick another port with --listen ${at.host}:PORT (port 0 picks a free one)`,
        { cause: e },
      );
    case "EADDRNOTAVAIL":
      return failure(`${at.host} is not an address of this machine`, "listen on 127.0.0.1, 0.0.0.0, or an address of this machine", {
        cause: e,
      });
    case "EACCES":
      return failure(`not allowed to listen on port ${at.port}`, "ports below 1024 need privileges; pick a port from 1024 up", {
        cause: e,
      });
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return failure(`cannot resolve the --listen host ${at.host}`, "use an IP address such as 127.0.0.1", { cause: e });
    default:
      return failure(`cannot listen on ${at.endpoint}: ${(e as Error).message}`, "pick another --listen address", { cause: e });
  }
}

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
    const bootstrap = listOf(v.bootstrap).map((b) => parseHostPort("--bootstrap", b).endpoint);
    const anchors = listOf(v.anchor).map((b) => {
      const at = b.lastIndexOf("@");
      const organization = at >= 0 ? b.slice(at + 1) : undefined;
      if (organization === "")
        throw usageError(`--anchor ${JSON.stringify(b)} has an empty MSP ID after @`, "write HOST:PORT or HOST:PORT@Org1MSP");
      return { endpoint: parseHostPort("--anchor", at >= 0 ? b.slice(0, at) : b).endpoint, organization };
    });
    const externalEndpoint =
      v["external-endpoint"] !== undefined ? parseHostPort("--external-endpoint", v["external-endpoint"]).endpoint : "";
    const internalEndpoint =
      v["internal-endpoint"] !== undefined ? parseHostPort("--internal-endpoint", v["internal-endpoint"]).endpoint : undefined;
    if (internalEndpoint?.startsWith("[")) {
      throw usageError(
        "--internal-endpoint cannot be an IPv6 literal (Fabric's 'host:port' endpoints have one colon)",
        "give a host name or an IPv4 address",
      );
    }
    const aliveTimeIntervalMs =
      v["alive-interval"] !== undefined ? parseInteger("--alive-interval", v["alive-interval"], 1, 3_600_000, 5000) : undefined;
    const aliveExpirationTimeoutMs =
      v["alive-expiration"] !== undefined ? parseInteger("--alive-expiration", v["alive-expiration"], 1, 86_400_000, 25_000) : undefined;
    const maxUnauthenticatedStreams =
      v["max-unauthenticated-streams"] !== undefined
        ? parseInteger("--max-unauthenticated-streams", v["max-unauthenticated-streams"], 1, 1_000_000, 256)
        : undefined;
    if (internalEndpoint === undefined && listen.host.includes(":")) {
      throw usageError(
        `--listen ${listen.endpoint} is IPv6, which Fabric's 'host:port' internal endpoint cannot express`,
        "add --internal-endpoint HOST:PORT with a host name or IPv4 address that reaches this peer",
      );
    }
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
        ...(maxUnauthenticatedStreams !== undefined ? { options: { maxUnauthenticatedStreams } } : {}),
        membership: {
          internalEndpoint,
          externalEndpoint,
          bootstrapPeers: bootstrap,
          aliveTimeIntervalMs,
          aliveExpirationTimeoutMs,
        },
      });
    } catch (e) {
      throw failure(`cannot set up the peer: ${(e as Error).message}`, "check the --identity and --trust-ca files", { cause: e });
    }
    const comm = app.gossip;
    const pumps: Promise<unknown>[] = [startPumps(comm, emit, v["auto-ack"])];
    const closers: (() => void)[] = [];
    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => {
      closing ??= (async () => {
        for (const c of closers) c();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          app.close().catch(() => {}),
          new Promise<void>((r) => {
            timer = setTimeout(r, closeTimeoutMs);
          }),
        ]);
        clearTimeout(timer);
        await Promise.race([Promise.allSettled(pumps), new Promise((r) => setTimeout(r, 100))]);
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
      const membership = app.gossipMembership;
      if (membership === null) throw failure("the membership layer did not start", "report this as a bug; the log (stderr) may say why");
      emit("started", {
        endpoint,
        pkiId: id.pkiId,
        mspId: id.mspId,
        tls,
        ephemeral: id.dir === undefined,
        metrics: v.metrics ? `${tls ? "https" : "http"}://${endpoint}/metrics` : null,
        internalEndpoint: membership.self.internalEndpoint,
        externalEndpoint,
        bootstrap,
      });
      pumps.push(membershipEvents(membership, emit));
      for (const a of anchors) membership.connect(a.endpoint, { anchor: true, organization: a.organization });

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
          // Later signals (npm forwards Ctrl-C, which also reached us) must not cut the bounded close short.
          for (const s of stopSignals) {
            process.off(s, onSignal);
            process.on(s, () => {});
          }
          logger.info({ signal }, "stopping");
          resolve();
        };
        // SIGHUP too: closing the terminal would otherwise kill the peer (exit 129) without the goodbye to its peers.
        for (const s of stopSignals) process.once(s, onSignal);
      });
      await close();
      emit("stopped");
      return 0;
    } finally {
      await close();
    }
  },
};

/** The fields of a membership event. */
export function memberFields(m: Member): Fields {
  return {
    pkiId: m.pkiIdHex,
    organization: m.organization ?? null,
    endpoint: m.endpoint,
    internalEndpoint: m.internalEndpoint,
    incNum: m.timestamp.incNum,
    seqNum: m.timestamp.seqNum,
  };
}

/** Forwards membership changes (not `updated`: every alive message is one) to `emit`; resolves when it stopped. */
async function membershipEvents(membership: Membership, emit: (name: string, fields?: Fields) => void): Promise<void> {
  for await (const ev of membership.events) {
    if (ev.type !== "updated") emit(ev.type, memberFields(ev.member));
  }
}

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
    // Membership traffic is reported as joined/died/revived instead. The screen declines the alive
    // messages this predicate would reject anyway, so the duplicates membership's screen takes are not
    // decoded for us. Data messages are not screened: every copy is printed and acked, as Fabric's comm
    // delivers every copy (only its dissemination layer, which we lack, drops duplicates).
    for await (const m of comm.accept((m) => !isMembershipMessage(m), declineMembershipEnvelope)) {
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
