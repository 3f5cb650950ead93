/**
 * The inbound walk, in order: a stream a transport accepted → admission
 * (limits on unauthenticated streams and handshake rate) → handshake → a
 * probe is answered and let go, anything else becomes a connection and is
 * registered in the store → it is read until it ends.
 *
 * @private Internal code, not part of the public API.
 */
import { Admission } from "./admission.js";
import type { ConnectionStore } from "./connection-store.js";
import { type CommContext, hostOf } from "./context.js";
import { ErrorCode, GossipError } from "./errors.js";
import { type HandshakeResult, handshake } from "./handshake.js";
import { pkiIdHex } from "./identity.js";
import type { Router } from "./routing.js";
import type { WireStream } from "./transport.js";

function shuttingDown(): GossipError {
  return new GossipError(ErrorCode.Stopping, "shutting down");
}

/** Serves a comm's inbound streams. */
export class Inbound {
  private readonly admission: Admission;
  /**
   * Streams in the handshake: refused at once on stop. Undefined while there
   * are none (the steady state: an empty Set kept for good was ~152 B of
   * heap per comm, W9).
   */
  private handshaking: Set<WireStream> | undefined;

  constructor(
    private readonly ctx: CommContext,
    private readonly store: ConnectionStore,
    private readonly router: Router,
  ) {
    const { config, clock } = ctx;
    this.admission = new Admission(
      clock,
      config.maxUnauthenticatedStreams,
      config.maxHandshakesPerSecondPerAddress,
      config.maxUnauthenticatedStreamsPerAddress,
    );
  }

  /** Inbound streams in the handshake now. */
  get inHandshake(): number {
    return this.admission.inHandshake;
  }

  /**
   * Serves one inbound stream: resolves once it is a registered connection
   * (which reads on by itself until it closes), or, when it was refused or
   * only probed us, once it closed; never rejects (refusals end the stream
   * with their status). Not when a registered connection closes: that
   * promise (the connection's `closed`, this function's and the reaction
   * between them) cost ~300 bytes per inbound connection for good, half a
   * known peer's connection ends in a full mesh, and no transport waits on it.
   */
  async serve(stream: WireStream): Promise<void> {
    const { ctx } = this;
    if (ctx.stopping) {
      stream.abort(shuttingDown());
      return stream.closed;
    }
    const address = hostOf(stream.remoteAddress);
    const denied = this.admission.admit(address);
    if (denied) {
      ctx.metrics.refused(denied.code);
      ctx.limiter.maybe(`refused ${address}`, (suppressed) =>
        ctx.log.warn({ address: stream.remoteAddress, code: denied.code, err: denied.message, suppressed }, "inbound stream refused"),
      );
      stream.abort(denied);
      return stream.closed;
    }
    let hs: HandshakeResult;
    this.handshaking ??= new Set();
    const handshaking = this.handshaking;
    handshaking.add(stream);
    try {
      hs = await handshake(stream, ctx.handshakeOptions(false));
    } catch (e) {
      const error = GossipError.from(e);
      stream.abort(error);
      ctx.handshakeFailed("inbound", stream.remoteAddress, error);
      return stream.closed;
    } finally {
      handshaking.delete(stream);
      if (handshaking.size === 0 && this.handshaking === handshaking) this.handshaking = undefined;
      this.admission.release(address);
    }
    if (ctx.stopping) {
      stream.abort(shuttingDown());
      return stream.closed;
    }
    // Keyed on the comm user's string for this PKI-ID, if it holds one (a dial takes the caller's anyway).
    ctx.adoptHexName(hs.pkiId);
    ctx.learn(hs.pkiId, hs.identity);
    if (hs.probe) {
      ctx.metrics.handshake("inbound", "probe");
      ctx.log.debug({ pkiId: pkiIdHex(hs.pkiId), address: stream.remoteAddress }, "peer probed us");
      stream.end();
      // The prober closes; do not keep a stream open for it.
      let timer: unknown;
      await Promise.race([stream.closed, new Promise((r) => (timer = ctx.clock.setTimeout(() => r(undefined), ctx.config.connTimeoutMs)))]);
      ctx.clock.clearTimeout(timer);
      stream.abort();
      return stream.closed;
    }
    ctx.metrics.handshake("inbound", "ok");
    const conn = this.router.connection(stream, hs, "inbound");
    try {
      this.store.register(conn);
    } catch (e) {
      const error = GossipError.from(e);
      ctx.metrics.refused(error.code);
      ctx.limiter.maybe(`register ${conn.pkiHex} ${error.code}`, (suppressed) =>
        ctx.peerLog(conn.info).warn({ code: error.code, err: error.message, suppressed }, "inbound connection refused"),
      );
      conn.abort(error);
      return conn.closed;
    }
  }

  /** Refuses every stream still in the handshake (on stop; registered connections drain in the store); admits none after. */
  refuseHandshaking(): void {
    if (this.handshaking !== undefined) for (const s of this.handshaking) s.abort(shuttingDown());
    this.admission.stop();
  }
}
