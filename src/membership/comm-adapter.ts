/**
 * Discovery's view of the comm (Fabric's discovery adapter, §1.2): gossiping
 * and forwarding alive messages through the batching emitter and the routing
 * rules, sending membership requests (with the secret envelope stripped for
 * another organization), and remembering whom we asked, so that their
 * responses count as solicited.
 */
import { create } from "@bufbuild/protobuf";
import type { Clock } from "../core/clock.js";
import type { Comm } from "../core/comm.js";
import {
  type Envelope,
  type GossipMessage,
  GossipMessage_Tag,
  GossipMessageSchema,
  MembershipRequestSchema,
} from "../gen/gossip/message_pb.js";
import { type ParsedAlive, withoutSecret } from "./alive-message.js";
import type { MembershipConfig } from "./config.js";
import { BatchingEmitter } from "./emitter.js";
import type { IdentityMapper } from "./identity-mapper.js";
import type { MembershipMetrics } from "./metrics.js";
import { type RouteItem, routeAlive } from "./routing.js";
import { type Known, MemberPeer, type View } from "./view.js";

/** What the adapter needs. */
export interface CommAdapterInit {
  readonly comm: Comm;
  readonly clock: Clock;
  readonly config: MembershipConfig;
  readonly mapper: IdentityMapper;
  readonly view: View;
  readonly metrics: MembershipMetrics;
  readonly random: () => number;
  readonly selfOrg: string;
}

/** A MembershipRequest (tag EMPTY, `known` empty as Fabric since FAB-2570) carrying `self`. */
export function membershipRequest(self: Envelope, nonce: bigint): GossipMessage {
  return create(GossipMessageSchema, {
    tag: GossipMessage_Tag.EMPTY,
    nonce,
    content: { case: "memReq", value: create(MembershipRequestSchema, { selfInformation: self, known: [] }) },
  });
}

/** Sends on behalf of discovery. */
export class CommAdapter {
  private readonly emitter: BatchingEmitter<RouteItem>;
  /** Peers we sent a request to, and until when their response counts as solicited. */
  private readonly outstanding = new Map<string, number>();
  /** The view's alive members as of a view version (routing reads them as they are, no copy per member). */
  private targetsCache: { readonly version: number; readonly members: Known[] } | undefined;

  constructor(private readonly init: CommAdapterInit) {
    const c = init.config;
    this.emitter = new BatchingEmitter(
      init.clock,
      { iterations: c.propagateIterations, burstSize: c.maxPropagationBurstSize, latencyMs: c.maxPropagationBurstLatencyMs },
      (items) => this.route(items),
    );
  }

  /** Gossips `a` (our own when `fromHex` is undefined), never back to the connection (hex PKI-ID `fromHex`) it came on. */
  gossip(a: ParsedAlive, fromHex: string | undefined): void {
    this.emitter.add({
      envelope: a.envelope,
      originHex: a.pkiHex,
      originEndpoint: a.endpoint,
      fromHex,
    });
  }

  /** Sends `self` in a request (nonce 0) to member `k` at `endpoint`; no internal endpoint for another organization. */
  sendRequest(k: Known, endpoint: string, self: Envelope): void {
    const org = this.init.mapper.organizationOfHex(k.pkiHex);
    const info = org !== undefined && org !== this.init.selfOrg ? withoutSecret(self) : self;
    this.markRequested(k.pkiHex);
    void this.init.comm.send(membershipRequest(info, 0n), MemberPeer.of(k, endpoint));
    this.init.metrics.sent("membership_request");
  }

  /** Remembers that `hex` was asked (its response is solicited for a while). */
  markRequested(hex: string): void {
    if (this.outstanding.size > 4096) this.outstanding.clear();
    const c = this.init.config;
    this.outstanding.set(hex, this.init.clock.now() + Math.max(c.connectResponseTimeoutMs, 2 * c.pullIntervalMs));
  }

  /** True (once) when `hex` was asked recently. */
  takeRequested(hex: string): boolean {
    const until = this.outstanding.get(hex);
    if (until === undefined) return false;
    this.outstanding.delete(hex);
    return until >= this.init.clock.now();
  }

  /** Stops the emitter (buffered messages are dropped). */
  stop(): void {
    this.emitter.stop();
  }

  /** Alive members as routing targets, listed again only when the view changed. */
  private targets(): Known[] {
    const { view } = this.init;
    if (this.targetsCache === undefined || this.targetsCache.version !== view.version) {
      this.targetsCache = { version: view.version, members: view.alive() };
    }
    return this.targetsCache.members;
  }

  private route(items: RouteItem[]): void {
    const routes = routeAlive(items, {
      selfOrg: this.init.selfOrg,
      peerNum: this.init.config.propagatePeerNum,
      members: this.targets(),
      orgOf: (hex) => this.init.mapper.peekOrganization(hex),
      random: this.init.random,
    });
    for (const r of routes) {
      void this.init.comm.send(r.envelope, ...r.targets.map((t) => MemberPeer.of(t)));
      this.init.metrics.sent("alive");
    }
  }
}
