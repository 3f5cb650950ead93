/**
 * Membership's periodic work, each on the scheduler: our alive message every
 * alive interval (§3.3), the expiration check (§3.8), the msgStore sweep
 * that removes members completely (§3.10), membership sync (§3.9) and the
 * reconnect loop that probes dead members (§3.8). What it sends goes out
 * through the {@link CommAdapter}.
 */
import type { Clock } from "../core/clock.js";
import type { Comm } from "../core/comm.js";
import type { Logger } from "../core/logger.js";
import { internalEndpointOf, parseAlive } from "./alive-message.js";
import type { AliveStore } from "./alive-store.js";
import type { AwaitingIdentity } from "./awaiting-identity.js";
import type { CommAdapter } from "./comm-adapter.js";
import type { MembershipConfig } from "./config.js";
import type { IdentityMapper } from "./identity-mapper.js";
import type { RateBudget } from "./rate-budget.js";
import { pickRandom } from "./routing.js";
import type { Scheduler } from "./scheduler.js";
import type { SelfAlive } from "./self-alive.js";
import { envelopeOf, type Known, pkiIdOf, preferredEndpoint, type View } from "./view.js";

/** What the periodic work needs (the parts of a Membership). */
export interface PeriodicInit {
  readonly comm: Comm;
  readonly clock: Clock;
  readonly config: MembershipConfig;
  readonly log: Logger;
  readonly random: () => number;
  readonly scheduler: Scheduler;
  readonly selfOrg: string;
  readonly self: SelfAlive;
  readonly mapper: IdentityMapper;
  readonly view: View;
  readonly store: AliveStore;
  readonly adapter: CommAdapter;
  readonly awaiting: AwaitingIdentity;
  /** Verification budgets, pruned with the expiration check. */
  readonly budget: RateBudget;
  /** Endpoints (bootstrap, connect()) whose members are never removed. */
  readonly protectedEndpoints: ReadonlySet<string>;
}

/** Fabric's member string: "Endpoint: x, InternalEndpoint: y, PKI-ID: hex, Metadata: m". */
export function memberString(k: Known): string {
  return `Endpoint: ${k.endpoint}, InternalEndpoint: ${k.internalEndpoint}, PKI-ID: ${k.pkiHex}, Metadata: ${Buffer.from(k.metadata).toString("hex")}`;
}

/** Alive emission, expiration, msgStore sweep, sync and reconnection. */
export class PeriodicWork {
  constructor(private readonly init: PeriodicInit) {}

  /** Starts every loop (sync and reconnect run a first round at once, as Fabric's). */
  start(): void {
    const { scheduler: sc, config: c, mapper } = this.init;
    sc.every(c.aliveTimeIntervalMs, () => this.periodicAlive());
    sc.every(c.aliveExpirationCheckIntervalMs, () => {
      this.checkExpiration();
      this.init.awaiting.sweep(this.init.clock.now());
      this.init.budget.prune(this.init.clock.now());
    });
    sc.every((c.aliveExpirationTimeoutMs * c.msgExpirationFactor) / 100, () => this.sweepStore());
    sc.every(c.identityPurgeIntervalMs, () => mapper.purgeUnused(c.identityUsageThresholdMs));
    this.syncLoop();
    this.reconnectLoop();
  }

  /** Moves an alive member to the dead side and closes its connection (silence, or a comm presumed-dead event). */
  expire(hex: string, why: string): void {
    const k = this.init.view.expire(hex);
    if (k === undefined) return;
    this.init.log.debug({ pkiId: hex, why }, `Closing connection to ${memberString(k)}`);
    this.init.comm.closeConn({ pkiId: pkiIdOf(k), endpoint: preferredEndpoint(k) });
  }

  /** Our alive message, once someone is known (§3.3). */
  private periodicAlive(): void {
    if (this.init.view.aliveCount === 0) return;
    this.init.adapter.gossip(parseAlive(this.init.self.signPeriodic()), undefined);
  }

  private checkExpiration(): void {
    const { clock, view, config, log } = this.init;
    const now = clock.now();
    for (const k of view.alive()) {
      if (now - k.lastHeardMs > config.aliveExpirationTimeoutMs) {
        log.debug({ pkiId: k.pkiHex }, `Haven't heard from ${k.pkiHex} for ${(now - k.lastHeardMs) / 1000}s`);
        this.expire(k.pkiHex, "silent");
      }
    }
  }

  /**
   * Removes the members whose msgStore entry expired, unless the endpoints
   * in that stored message (as Fabric: its external endpoint and the
   * internal one of its secret envelope, not what the view remembers from
   * earlier messages) are a bootstrap or anchor endpoint.
   */
  private sweepStore(): void {
    const { store, view, clock, protectedEndpoints, log } = this.init;
    for (const a of store.sweep(clock.now())) {
      if (view.get(a.pkiHex) === undefined) continue;
      if (protectedEndpoints.has(a.endpoint) || protectedEndpoints.has(a.internalEndpoint)) {
        log.debug({ pkiId: a.pkiHex }, `Do not remove bootstrap or anchor peer endpoint ${a.endpoint} from membership`);
        continue;
      }
      view.remove(a.pkiHex);
    }
  }

  /**
   * InitiateSync every pull interval, first at once (§3.9). As Fabric, each
   * target is reached at the endpoints of its latest stored alive message:
   * the internal one only if that message carries it in a secret envelope
   * (one forwarded by another organization does not), else the external one.
   * A round signs one alive message for all its targets, as Fabric builds
   * one request: signed per target, each target held a newest timestamp of
   * us of its own, and after we crash each such timestamp could revive us
   * (through the sync responses that carry it) in every view that had
   * already expired us with an older one.
   */
  private syncLoop(): void {
    const { config: c, view, random, adapter, self } = this.init;
    const round = () => {
      const targets = pickRandom(view.alive(), c.pullPeerNum, random);
      if (targets.length === 0) return;
      const request = self.sign();
      for (const k of targets) {
        const endpoint = preferredEndpoint({ endpoint: k.endpoint, internalEndpoint: internalEndpointOf(envelopeOf(k)) });
        adapter.sendRequest(k, endpoint, request);
      }
    };
    round();
    this.init.scheduler.every(c.pullIntervalMs, round);
  }

  /** Probes dead members every reconnect interval (at most maxProbesPerReconnectRound) and asks those that answer (§3.8). */
  private reconnectLoop(): void {
    const { config, view, random, mapper, selfOrg, comm, scheduler, adapter, self } = this.init;
    const round = async () => {
      const dead = pickRandom(view.dead(), config.maxProbesPerReconnectRound, random);
      await Promise.all(
        dead.map(async (k) => {
          const org = mapper.peekOrganization(k.pkiHex);
          const endpoint = org !== undefined && org !== selfOrg ? k.endpoint : preferredEndpoint(k);
          if (endpoint === "") return;
          try {
            await comm.probe({ endpoint, pkiId: pkiIdOf(k) });
          } catch {
            return;
          }
          if (!scheduler.stopped && view.get(k.pkiHex) === k) adapter.sendRequest(k, endpoint, self.sign());
        }),
      );
    };
    scheduler.run(async () => {
      while (!scheduler.stopped) {
        await round();
        await scheduler.sleep(config.reconnectIntervalMs);
      }
    });
  }
}
