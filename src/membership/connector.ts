/**
 * Fabric's Connect (§3.2): join through a bootstrap peer. A probe handshake
 * learns who answers at the endpoint (it must be of our organization), then a
 * MembershipRequest with a random nonce is resent until a response with that
 * nonce arrives (sendUntilAcked), each step retried `maxConnectionAttempts`
 * times, `reconnectIntervalMs` apart.
 */
import { type Clock, sleep } from "../core/clock.js";
import type { Comm } from "../core/comm.js";
import type { CryptoService } from "../core/crypto.js";
import { ErrorCode, GossipError } from "../core/errors.js";
import { type PkiId, pkiIdHex } from "../core/identity.js";
import type { Logger, LogLimiter } from "../core/logger.js";
import type { GossipMessage } from "../gen/gossip/message_pb.js";
import type { MembershipConfig } from "./config.js";
import { randomNonce } from "./identity-pull.js";

/** What a connector needs. */
export interface ConnectorInit {
  readonly comm: Comm;
  readonly crypto: CryptoService;
  readonly clock: Clock;
  readonly config: MembershipConfig;
  readonly selfOrg: string;
  readonly random: () => number;
  readonly log: Logger;
  readonly limiter: LogLimiter;
  readonly signal: AbortSignal;
  /** A MembershipRequest with a freshly signed alive message and `nonce`; `selfOrg` keeps the secret envelope. */
  readonly buildRequest: (nonce: bigint, selfOrg: boolean) => GossipMessage;
  /** Our external endpoint now ("" = none). */
  readonly externalEndpoint: () => string;
  /** Called for each request sent to `pkiId` (so that its response counts as solicited). */
  readonly requested: (pkiId: PkiId) => void;
}

/** Fabric's self check for Connect: pure string comparison with our endpoints and loopback aliases of our port. */
export function isSelfEndpoint(endpoint: string, internalEndpoint: string, externalEndpoint: string): boolean {
  const port = internalEndpoint.slice(internalEndpoint.lastIndexOf(":") + 1);
  return (
    endpoint === internalEndpoint ||
    (externalEndpoint !== "" && endpoint === externalEndpoint) ||
    endpoint === `127.0.0.1:${port}` ||
    endpoint === `localhost:${port}`
  );
}

/** How to {@link Connector.connect}: as to a bootstrap peer (the default) or to a channel's anchor peer. */
export interface ConnectOptions {
  /** An anchor peer: of any organization, and then our request carries no internal endpoint. */
  readonly anchor?: boolean;
  /**
   * The MSP ID the channel configuration names for the anchor's organization
   * (Fabric's `orgOfAnchorPeers`). Known, it decides before any dial: another
   * organization's anchor is skipped when we have no external endpoint, and
   * an anchor claimed to be of ours must prove it in the handshake.
   */
  readonly organization?: string;
}

/** Connects to bootstrap peers and pairs their responses by nonce. */
export class Connector {
  private readonly waiters = new Map<bigint, () => void>();

  constructor(private readonly init: ConnectorInit) {}

  /**
   * Starts connecting to `endpoint` in the background (nothing when it is
   * ourselves). A bootstrap peer must be of our organization; an anchor peer
   * may be of another (then our request carries no internal endpoint, and
   * nothing is sent when we have no external endpoint: with `organization`
   * known, nothing is even dialed, as in Fabric).
   */
  connect(endpoint: string, options: ConnectOptions = {}): void {
    const c = this.init.config;
    const anchor = options.anchor ?? false;
    if (isSelfEndpoint(endpoint, c.internalEndpoint, c.externalEndpoint)) {
      this.init.log.debug({ endpoint }, "Skipping connecting to myself");
      return;
    }
    const claimed = anchor ? options.organization : undefined;
    if (claimed !== undefined && claimed !== this.init.selfOrg && this.init.externalEndpoint() === "") {
      this.init.log.info(
        { endpoint, org: claimed },
        `Anchor peer ${endpoint} isn't in our org(${claimed}) and we have no external endpoint, skipping`,
      );
      return;
    }
    void this.run(endpoint, anchor, claimed).catch((e: unknown) => {
      const error = GossipError.from(e);
      if (error.code !== ErrorCode.Stopping && !this.init.signal.aborted)
        this.init.log.warn({ endpoint, err: error.message }, "connect failed");
    });
  }

  /** A response with `nonce` arrived; true when a Connect was waiting for it. */
  ack(nonce: bigint): boolean {
    const w = this.waiters.get(nonce);
    if (w === undefined) return false;
    w();
    return true;
  }

  /** Connect attempts waiting for a response now. */
  get pending(): number {
    return this.waiters.size;
  }

  private async run(endpoint: string, anchor: boolean, claimed: string | undefined): Promise<void> {
    const { config, signal, comm } = this.init;
    let remote: PkiId | undefined;
    let selfOrg = true;
    for (let i = 0; i < config.maxConnectionAttempts && remote === undefined; i++) {
      if (signal.aborted) return;
      try {
        const hs = await comm.handshake({ endpoint });
        const org = this.init.crypto.organizationOf(hs.identity);
        selfOrg = org === this.init.selfOrg;
        if (!selfOrg && !anchor) {
          throw new GossipError(ErrorCode.UnexpectedPeer, `${endpoint} isn't in our organization, cannot be a bootstrap peer`);
        }
        if (!selfOrg && claimed === this.init.selfOrg) {
          throw new GossipError(ErrorCode.UnexpectedPeer, `Anchor peer ${endpoint} isn't in our org, but is claimed to be`);
        }
        if (!selfOrg && claimed === undefined && this.init.externalEndpoint() === "") {
          // Without the configured organization we learn it only now (see docs/membership.md).
          this.init.log.warn(
            { endpoint, org },
            `Anchor peer ${endpoint} isn't in our org(${this.init.selfOrg}) and we have no external endpoint, skipping`,
          );
          return;
        }
        remote = hs.pkiId;
      } catch (e) {
        if (signal.aborted) return;
        const error = GossipError.from(e);
        this.init.limiter.maybe(`connect ${endpoint} ${error.code}`, (suppressed) =>
          this.init.log.warn({ endpoint, code: error.code, err: error.message, suppressed }, "Could not connect to bootstrap peer"),
        );
        await sleep(this.init.clock, config.reconnectIntervalMs, signal);
      }
    }
    if (remote === undefined || signal.aborted) return;
    const nonce = randomNonce(this.init.random);
    const request = this.init.buildRequest(nonce, selfOrg);
    for (let i = 0; i < config.maxConnectionAttempts; i++) {
      if (signal.aborted) return;
      const acked = await this.sendAndWait(request, nonce, {
        pkiId: remote,
        endpoint,
      });
      if (acked) {
        this.init.log.debug({ endpoint, pkiId: pkiIdHex(remote) }, "joined through bootstrap peer");
        return;
      }
      await sleep(this.init.clock, config.reconnectIntervalMs, signal);
    }
  }

  private sendAndWait(request: GossipMessage, nonce: bigint, to: { pkiId: PkiId; endpoint: string }): Promise<boolean> {
    return new Promise((resolve) => {
      const { clock, signal } = this.init;
      const done = (acked: boolean) => {
        clock.clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        this.waiters.delete(nonce);
        resolve(acked);
      };
      const onAbort = () => done(false);
      const timer = clock.setTimeout(() => done(false), this.init.config.connectResponseTimeoutMs);
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiters.set(nonce, () => done(true));
      this.init.requested(to.pkiId);
      void this.init.comm.send(request, to);
    });
  }
}
