/**
 * The membership layer's configuration: Fabric's discovery settings
 * (`peer.gossip.*` in core.yaml) with Fabric's defaults, plus the few limits
 * of our own that bound what a misbehaving peer can make us do.
 */

/** What the owner of a {@link Membership} may set; every field but `internalEndpoint` has Fabric's default. */
export interface MembershipOptions {
  /** Our internal endpoint `host:port`, disclosed to our organization only. Fabric: `peer.gossip.endpoint`. */
  internalEndpoint: string;
  /** Our external endpoint; `""` makes us invisible to other organizations. Fabric: `peer.gossip.externalEndpoint`. @default "" */
  externalEndpoint?: string;
  /** Peers of our organization to join through at start. Fabric: `peer.gossip.bootstrap`. @default [] */
  bootstrapPeers?: readonly string[];
  /** Our metadata, carried in every alive message. @default empty */
  metadata?: Uint8Array;
  /** Alive message period. Fabric: `peer.gossip.aliveTimeInterval`. @default 5000 */
  aliveTimeIntervalMs?: number;
  /** Silence after which a member is dead. Fabric: `peer.gossip.aliveExpirationTimeout`. @default 5 × aliveTimeIntervalMs (25000) */
  aliveExpirationTimeoutMs?: number;
  /** Period of the expiration check (no Fabric key). @default aliveExpirationTimeoutMs / 10 */
  aliveExpirationCheckIntervalMs?: number;
  /** Reconnect loop period and Connect retry sleep. Fabric: `peer.gossip.reconnectInterval`. @default aliveExpirationTimeoutMs */
  reconnectIntervalMs?: number;
  /** Connect: handshake attempts, then request resends (each). Fabric: `peer.gossip.maxConnectionAttempts`. @default 120 */
  maxConnectionAttempts?: number;
  /** Alive msgStore TTL = factor × aliveExpirationTimeoutMs. Fabric: `peer.gossip.msgExpirationFactor`. @default 20 */
  msgExpirationFactor?: number;
  /** Alive messages carry our identity this long after start. Fabric: `peer.gossip.publishCertPeriod`. @default 10000 */
  publishCertPeriodMs?: number;
  /** Emits per pushed message. Fabric: `peer.gossip.propagateIterations`. @default 1 */
  propagateIterations?: number;
  /** Targets per push. Fabric: `peer.gossip.propagatePeerNum`. @default 3 */
  propagatePeerNum?: number;
  /** Buffered messages that force an emit. Fabric: `peer.gossip.maxPropagationBurstSize`. @default 10 */
  maxPropagationBurstSize?: number;
  /** Emitter period. Fabric: `peer.gossip.maxPropagationBurstLatency`. @default 10 */
  maxPropagationBurstLatencyMs?: number;
  /** Membership sync and identity pull period. Fabric: `peer.gossip.pullInterval`. @default 4000 */
  pullIntervalMs?: number;
  /** Membership sync and identity pull targets. Fabric: `peer.gossip.pullPeerNum`. @default 3 */
  pullPeerNum?: number;
  /** Identity pull: how long digests are accepted. Fabric: `peer.gossip.digestWaitTime`. @default 1000 */
  digestWaitTimeMs?: number;
  /** Identity pull: how long a Hello nonce is remembered. Fabric: `peer.gossip.requestWaitTime`. @default 1500 */
  requestWaitTimeMs?: number;
  /** Identity pull: how long updates are accepted. Fabric: `peer.gossip.responseWaitTime`. @default 2000 */
  responseWaitTimeMs?: number;
  /** Connect: wait for the response to each request (hard-coded in Fabric). @default 5000 */
  connectResponseTimeoutMs?: number;
  /** Ours: a MembershipResponse with more entries is refused unprocessed. @default 10000 */
  maxMembershipResponseEntries?: number;
  /** Ours: signature verifications per second that one peer's unsolicited messages may cost us. @default 200 */
  maxVerificationsPerPeerPerSecond?: number;
  /** Ours: dead members probed per reconnect round, at most. @default 64 */
  maxProbesPerReconnectRound?: number;
  /**
   * Ours (Fabric has no limit): an alive message whose envelope (payload,
   * signature and secret envelope) is larger is refused as `MessageTooLarge`
   * wherever it arrives (gossip, request, response entry). A member's alive
   * message is kept, forwarded and repeated in every membership response, so
   * one of tens of MiB would make every response too large to send. Fabric's
   * are ~0.3 KiB, ~1.3 KiB while they carry the identity. Our own metadata
   * must leave room for it. @default 65536
   */
  maxAliveMessageBytes?: number;
  /** Unused identities are purged after this long (hard-coded in Fabric). @default 3600000 */
  identityUsageThresholdMs?: number;
  /** Period of the unused-identity purge (hard-coded in Fabric). @default 360000 */
  identityPurgeIntervalMs?: number;
}

/** {@link MembershipOptions} with every default applied. */
export type MembershipConfig = Required<MembershipOptions>;

const positive = (name: string, v: number) => {
  if (!Number.isFinite(v) || v <= 0) throw new TypeError(`gossip-connect: membership option ${name} must be a positive number, got ${v}`);
};

/** Fabric's check of the internal endpoint: `host:port`, exactly one colon, numeric port ≤ 65535. */
export function checkEndpoint(endpoint: string): void {
  const parts = endpoint.split(":");
  const port = Number(parts[1]);
  if (parts.length !== 2 || parts[0] === "" || !/^[0-9]+$/.test(parts[1] ?? "") || port > 65535) {
    throw new TypeError(`Self endpoint ${endpoint} isn't formatted as 'host:port'`);
  }
}

/**
 * Applies defaults as Fabric does (zero or unset means default) and checks
 * the internal endpoint. Throws `TypeError` for a malformed internal endpoint
 * or a negative or non-finite number.
 */
export function resolveMembershipConfig(o: MembershipOptions): MembershipConfig {
  checkEndpoint(o.internalEndpoint);
  const pick = (v: number | undefined, d: number) => (v === undefined || v === 0 ? d : v);
  const aliveTimeIntervalMs = pick(o.aliveTimeIntervalMs, 5000);
  const aliveExpirationTimeoutMs = pick(o.aliveExpirationTimeoutMs, 5 * aliveTimeIntervalMs);
  const c: MembershipConfig = {
    internalEndpoint: o.internalEndpoint,
    externalEndpoint: o.externalEndpoint ?? "",
    bootstrapPeers: [...(o.bootstrapPeers ?? [])],
    metadata: o.metadata ?? new Uint8Array(0),
    aliveTimeIntervalMs,
    aliveExpirationTimeoutMs,
    aliveExpirationCheckIntervalMs: pick(o.aliveExpirationCheckIntervalMs, aliveExpirationTimeoutMs / 10),
    reconnectIntervalMs: pick(o.reconnectIntervalMs, aliveExpirationTimeoutMs),
    maxConnectionAttempts: pick(o.maxConnectionAttempts, 120),
    msgExpirationFactor: pick(o.msgExpirationFactor, 20),
    publishCertPeriodMs: pick(o.publishCertPeriodMs, 10_000),
    propagateIterations: pick(o.propagateIterations, 1),
    propagatePeerNum: pick(o.propagatePeerNum, 3),
    maxPropagationBurstSize: pick(o.maxPropagationBurstSize, 10),
    maxPropagationBurstLatencyMs: pick(o.maxPropagationBurstLatencyMs, 10),
    pullIntervalMs: pick(o.pullIntervalMs, 4000),
    pullPeerNum: pick(o.pullPeerNum, 3),
    digestWaitTimeMs: pick(o.digestWaitTimeMs, 1000),
    requestWaitTimeMs: pick(o.requestWaitTimeMs, 1500),
    responseWaitTimeMs: pick(o.responseWaitTimeMs, 2000),
    connectResponseTimeoutMs: pick(o.connectResponseTimeoutMs, 5000),
    maxMembershipResponseEntries: pick(o.maxMembershipResponseEntries, 10_000),
    maxVerificationsPerPeerPerSecond: pick(o.maxVerificationsPerPeerPerSecond, 200),
    maxProbesPerReconnectRound: pick(o.maxProbesPerReconnectRound, 64),
    maxAliveMessageBytes: pick(o.maxAliveMessageBytes, 65_536),
    identityUsageThresholdMs: pick(o.identityUsageThresholdMs, 3_600_000),
    identityPurgeIntervalMs: pick(o.identityPurgeIntervalMs, 360_000),
  };
  for (const [k, v] of Object.entries(c)) if (typeof v === "number") positive(k, v);
  // Our alive message is the metadata plus up to a few KiB (identity, endpoints, signatures): peers
  // with the default limit would refuse it.
  if (c.metadata.length > c.maxAliveMessageBytes - 16_384) {
    throw new TypeError(
      `gossip-connect: membership metadata of ${c.metadata.length} bytes leaves no room in an alive message of at most maxAliveMessageBytes (${c.maxAliveMessageBytes}) bytes`,
    );
  }
  return c;
}
