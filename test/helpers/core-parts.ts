/**
 * The parts of a comm (context, router, store, inbound, outbound), wired as
 * Comm wires them but without the facade, for tests of one part alone on the
 * in-memory transport.
 */
import { AckRegistry } from "../../src/core/ack.js";
import type { Clock } from "../../src/core/clock.js";
import { type CommOptions, resolveCommConfig } from "../../src/core/config.js";
import { ConnectionStore } from "../../src/core/connection-store.js";
import { CommContext, type PresumedDeadEvent } from "../../src/core/context.js";
import type { CryptoService } from "../../src/core/crypto.js";
import { Demux } from "../../src/core/demux.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import { EventStream } from "../../src/core/event-stream.js";
import { pkiIdHex } from "../../src/core/identity.js";
import { IdentityStore } from "../../src/core/identity-store.js";
import { Inbound } from "../../src/core/inbound.js";
import { LogLimiter, silentLogger } from "../../src/core/logger.js";
import { type CommMetrics, noopMetrics } from "../../src/core/metrics.js";
import { type IdentitySwitchEvent, Outbound } from "../../src/core/outbound.js";
import type { ReceivedMessage } from "../../src/core/received-message.js";
import { Router } from "../../src/core/routing.js";
import { countingMetrics, MutableStats } from "../../src/core/stats.js";
import type { Dialer } from "../../src/core/transport.js";

/** Builds the parts; `dialer` is needed only by the outbound part. */
export function coreParts(o: {
  clock: Clock;
  crypto: CryptoService;
  dialer?: Dialer;
  options?: CommOptions;
  metrics?: Partial<CommMetrics>;
}) {
  const { clock, crypto } = o;
  const config = resolveCommConfig(o.options);
  const counts = new MutableStats();
  const refused: string[] = [];
  const metrics = countingMetrics({ ...noopMetrics, refused: (r) => refused.push(r), ...o.metrics }, counts);
  const presumedDead = new EventStream<PresumedDeadEvent>(100);
  const identitySwitch = new EventStream<IdentitySwitchEvent>(100);
  const ctx = new CommContext({
    config,
    crypto,
    clock,
    log: silentLogger,
    limiter: new LogLimiter(() => clock.now()),
    metrics,
    counts,
    identities: new IdentityStore(clock),
    presumedDead,
  });
  const acks = new AckRegistry(clock);
  const demux = new Demux<ReceivedMessage>(100);
  const router = new Router(ctx, acks, demux, (c) => store.connectionClosed(c));
  const noDialer: Dialer = {
    openStream: () => Promise.reject(new Error("no dialer")),
    ping: () => Promise.reject(new Error("no dialer")),
  };
  let outbound: Outbound | undefined;
  const store = new ConnectionStore({
    dial: (peer, signal) => (outbound as Outbound).dial(peer, signal),
    maxConnectionsPerPeer: config.maxConnectionsPerPeer,
    selfPkiHex: pkiIdHex(ctx.pkiId),
    simultaneousWindowMs: config.dialTimeoutMs + config.connTimeoutMs,
    clock,
    onRegistered: (c) => metrics.connectionOpened(c.info.direction),
    onUnregistered: (c) => metrics.connectionClosed(c.info.direction),
  });
  const inbound = new Inbound(ctx, store, router);
  outbound = new Outbound(ctx, store, router, o.dialer ?? noDialer, identitySwitch);
  /** Stops as Comm.stop does; resolves when every connection closed. */
  const stop = async () => {
    ctx.stop();
    acks.rejectAll(new GossipError(ErrorCode.Stopping, "comm is stopping"));
    inbound.refuseHandshaking();
    outbound?.close();
    await store.shutdown();
    demux.close();
    presumedDead.end();
    identitySwitch.end();
  };
  return { ctx, config, counts, refused, acks, demux, router, store, inbound, outbound, presumedDead, identitySwitch, stop };
}
