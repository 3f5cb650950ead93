/**
 * A Fabric-conformant discovery (membership) peer for interop tests, on the
 * foreign comm peer (grpc-js, @hyperledger/fabric-protos, node:crypto): the
 * outside check of src/membership, written from
 * /work/shared/design/fabric-discovery-behaviour.md without reading it.
 *
 * What it does, as a Fabric v2.4.9 peer does (sections of the behaviour doc):
 * - signs alive messages (`inc_num` = start time in ns, `seq_num` counting up
 *   from 1 for every alive it signs, `identity` within publishCertPeriod,
 *   secret envelope with its internal endpoint) and gossips them every
 *   `aliveIntervalMs` once it knows someone, routing them as §3.4 says;
 * - verifies, learns, forwards (once) gossiped alive messages (§3.5);
 * - answers MembershipRequests with a MembershipResponse carrying the
 *   request's nonce, filtered by the disclosure policy (§3.11), its own alive
 *   last; closes the connection of a requester it must not answer (§3.6);
 * - `Connect`s to bootstrap peers (same org, deep probe first) and anchor
 *   peers (any org) with a random nonce, resending until answered (§3.2);
 *   syncs with random alive members every `pullIntervalMs` (nonce 0, §3.9);
 * - expires silent members, expires at once a member it failed to dial,
 *   probes dead members every `reconnectIntervalMs` and asks those that
 *   answer (§3.8);
 * - pulls identities (Hello, DataDigest, DataRequest, DataUpdate with
 *   IDENTITY_MSG) as initiator and responder (§4.2).
 *
 * Uint64 fields (nonces, inc_num, seq_num) are encoded and parsed by hand:
 * google-protobuf reads them as JS numbers, and inc_num in ns exceeds 2^53.
 * Intervals are options (short ones for tests); timers are real.
 */
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import type * as fabricTypes from "@hyperledger/fabric-protos";
import { type ForeignConnInfo, type ForeignIdentity, ForeignPeer, type ForeignPeerOptions } from "./foreign-peer.js";

const require = createRequire(import.meta.url);
const fabric = require("@hyperledger/fabric-protos") as typeof fabricTypes;
const { gossip } = fabric;

type Envelope = fabricTypes.gossip.Envelope;

// --- protobuf wire, by hand where 64-bit values must stay exact -------------

const tagEmpty = 1;
const identityMsg = 2;
/** GossipMessage content field numbers. */
const F = {
  alive: 5,
  memReq: 6,
  memRes: 7,
  hello: 9,
  dataDig: 10,
  dataReq: 11,
  dataUpdate: 12,
  peerIdentity: 21,
} as const;

function varint(v: bigint): Buffer {
  const out: number[] = [];
  let x = v;
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  return Buffer.from(out);
}

function key(field: number, wireType: number): Buffer {
  return varint(BigInt((field << 3) | wireType));
}

/** A varint field; zero is omitted as proto3 (and Go) encoders do. */
function intField(field: number, v: bigint): Buffer {
  return v === 0n ? Buffer.alloc(0) : Buffer.concat([key(field, 0), varint(v)]);
}

function bytesField(field: number, b: Uint8Array): Buffer {
  return Buffer.concat([key(field, 2), varint(BigInt(b.length)), b]);
}

interface WireField {
  readonly field: number;
  readonly int?: bigint;
  readonly bytes?: Uint8Array;
}

/** Reads every field of a message (no schema); throws on anything malformed. */
function readFields(b: Uint8Array): WireField[] {
  const out: WireField[] = [];
  let at = 0;
  const readVarint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      const byte = b[at++];
      if (byte === undefined) throw new Error("truncated varint");
      v |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return v;
      shift += 7n;
    }
    throw new Error("varint too long");
  };
  while (at < b.length) {
    const k = Number(readVarint());
    const field = k >>> 3;
    const wt = k & 7;
    if (field === 0) throw new Error("field number 0");
    if (wt === 0) out.push({ field, int: readVarint() });
    else if (wt === 2) {
      const len = Number(readVarint());
      if (at + len > b.length) throw new Error("truncated bytes");
      out.push({ field, bytes: b.subarray(at, at + len) });
      at += len;
    } else if (wt === 1) at += 8;
    else if (wt === 5) at += 4;
    else throw new Error(`wire type ${wt}`);
    if (at > b.length) throw new Error("truncated");
  }
  return out;
}

const lastBytes = (fs: readonly WireField[], n: number) => fs.filter((f) => f.field === n && f.bytes).at(-1)?.bytes;
const lastInt = (fs: readonly WireField[], n: number) => fs.filter((f) => f.field === n && f.int !== undefined).at(-1)?.int ?? 0n;
const allBytes = (fs: readonly WireField[], n: number) => fs.filter((f) => f.field === n && f.bytes).map((f) => f.bytes as Uint8Array);

/** A GossipMessage, shallowly parsed: nonce, tag, and the content (field number and bytes). */
interface Gm {
  readonly nonce: bigint;
  readonly tag: number;
  readonly channel: Uint8Array;
  readonly content: number | undefined;
  readonly body: Uint8Array;
}

function parseGm(payload: Uint8Array): Gm {
  const fs = readFields(payload);
  const content = fs.filter((f) => f.field >= 5 && f.bytes).at(-1);
  return {
    nonce: lastInt(fs, 1),
    tag: Number(lastInt(fs, 3)),
    channel: lastBytes(fs, 2) ?? new Uint8Array(0),
    content: content?.field,
    body: content?.bytes ?? new Uint8Array(0),
  };
}

function gm(nonce: bigint, content: number, body: Uint8Array): Buffer {
  return Buffer.concat([intField(1, nonce), intField(3, BigInt(tagEmpty)), bytesField(content, body)]);
}

/** An alive message, parsed. */
export interface ParsedAlive {
  readonly pkiId: Buffer;
  readonly endpoint: string;
  readonly metadata: Uint8Array;
  readonly inc: bigint;
  readonly seq: bigint;
  readonly hasTimestamp: boolean;
  readonly identity: Uint8Array | undefined;
}

function parseAlive(body: Uint8Array): ParsedAlive | undefined {
  const fs = readFields(body);
  const memberBytes = lastBytes(fs, 1);
  if (!memberBytes) return undefined;
  const member = gossip.Member.deserializeBinary(memberBytes);
  const ts = lastBytes(fs, 2);
  const tsFields = ts ? readFields(ts) : [];
  const identity = lastBytes(fs, 4);
  return {
    pkiId: Buffer.from(member.getPkiId_asU8()),
    endpoint: member.getEndpoint(),
    metadata: member.getMetadata_asU8(),
    inc: lastInt(tsFields, 1),
    seq: lastInt(tsFields, 2),
    hasTimestamp: ts !== undefined,
    identity: identity && identity.length > 0 ? identity : undefined,
  };
}

/** A pull message (Hello, DataDigest, DataRequest, DataUpdate): nonce, items, type. */
function pullMsg(nonce: bigint, items: readonly Uint8Array[]): Buffer {
  return Buffer.concat([intField(1, nonce), ...items.map((i) => bytesField(2, i)), intField(3, BigInt(identityMsg))]);
}

function parsePull(body: Uint8Array): {
  nonce: bigint;
  items: Uint8Array[];
  msgType: number;
} {
  const fs = readFields(body);
  return {
    nonce: lastInt(fs, 1),
    items: allBytes(fs, 2),
    msgType: Number(lastInt(fs, 3)),
  };
}

function envelope(payload: Uint8Array, signature: Uint8Array = new Uint8Array(0), secret?: fabricTypes.gossip.SecretEnvelope): Envelope {
  const env = new gossip.Envelope();
  env.setPayload(payload);
  env.setSignature(signature);
  if (secret) env.setSecretEnvelope(secret);
  return env;
}

/** A copy of `env` without its secret envelope (what crosses an org boundary). */
function withoutSecret(env: Envelope): Envelope {
  return envelope(env.getPayload_asU8(), env.getSignature_asU8());
}

function newer(a: { inc: bigint; seq: bigint }, b: { inc: bigint; seq: bigint }): boolean {
  return a.inc > b.inc || (a.inc === b.inc && a.seq > b.seq);
}

function randomNonce(): bigint {
  return randomBytes(8).readBigUInt64BE();
}

function shuffled<T>(xs: readonly T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j] as T, a[i] as T];
  }
  return a;
}

let lastIncNum = 0n;
/** Wall-clock ns, strictly increasing within this process (two starts in one ms still order). */
function nowNs(): bigint {
  const ns = BigInt(Date.now()) * 1_000_000n;
  lastIncNum = ns > lastIncNum ? ns : lastIncNum + 1n;
  return lastIncNum;
}

// --- the peer -----------------------------------------------------------------

/** Discovery settings; every interval may be shortened for tests. */
export interface ForeignDiscoveryOptions {
  /** Internal endpoint (secret envelope). @default the endpoint it listens on */
  readonly internalEndpoint?: string;
  /**
   * External endpoint (`Member.endpoint`); "" = invisible to other orgs;
   * "listen" = the endpoint it listens on. @default ""
   */
  readonly externalEndpoint?: string;
  /** Same-org peers to Connect at start (peer.gossip.bootstrap). */
  readonly bootstrap?: readonly string[];
  /** Anchor peers to Connect at start, of any org. */
  readonly anchors?: readonly string[];
  readonly metadata?: Uint8Array;
  /** inc_num of this incarnation. @default wall-clock ns now */
  readonly incNum?: bigint;
  /** @default 5000 */
  readonly aliveIntervalMs?: number;
  /** @default 5 x aliveIntervalMs */
  readonly aliveExpirationTimeoutMs?: number;
  /** @default aliveExpirationTimeoutMs / 10 */
  readonly expirationCheckIntervalMs?: number;
  /** @default aliveExpirationTimeoutMs */
  readonly reconnectIntervalMs?: number;
  /** @default 120 */
  readonly maxConnectionAttempts?: number;
  /** Wait for the response to a Connect request. @default 5000 */
  readonly connectResponseTimeoutMs?: number;
  /** Membership sync and identity pull period. @default 4000 */
  readonly pullIntervalMs?: number;
  /** @default 3 */
  readonly pullPeerNum?: number;
  /** @default 3 */
  readonly propagatePeerNum?: number;
  /** @default 1000 */
  readonly digestWaitMs?: number;
  /** @default 1500 */
  readonly requestWaitMs?: number;
  /** @default 2000 */
  readonly responseWaitMs?: number;
  /** Alive messages carry `identity` this long after start. @default 10000 */
  readonly publishCertPeriodMs?: number;
  /** Periodic membership sync (§3.9). @default true */
  readonly sync?: boolean;
  /** Identity pull initiator (§4.2); the responder always runs. @default true */
  readonly identityPull?: boolean;
}

/** A member as this peer's view holds it. */
export interface ForeignMember {
  readonly pkiIdHex: string;
  readonly pkiId: Buffer;
  endpoint: string;
  internalEndpoint: string;
  metadata: Uint8Array;
  inc: bigint;
  seq: bigint;
  /** Date.now() when a strictly newer alive arrived. */
  lastSeen: number;
  state: "alive" | "dead";
  /** The latest alive Envelope as received (secret envelope included), for responses. */
  stored: Envelope;
}

/** A change of the view. */
export interface ForeignDiscoveryEvent {
  readonly type: "joined" | "died" | "revived";
  readonly pkiIdHex: string;
  readonly at: number;
}

/** Counters, for assertions. */
export interface ForeignDiscoveryStats {
  requestsReceived: number;
  responsesSent: number;
  /** Requests refused by the disclosure policy (connection closed). */
  requestsRefused: number;
  responsesReceived: number;
  aliveReceived: number;
  aliveSent: number;
  hellosReceived: number;
  digestsReceived: number;
  updatesReceived: number;
  identitiesLearnedByPull: number;
  /** Rejections by reason. */
  rejected: Record<string, number>;
}

interface KnownIdentity {
  readonly identity: Uint8Array;
  readonly mspId: string;
  readonly checked: ForeignIdentity;
}

interface PullRound {
  /** Our hello nonce -> the member (hex) we sent it to. */
  readonly hellos: Map<bigint, string>;
  /** Item (hex PKI-ID) -> peers (hex) that offered it. */
  readonly offers: Map<string, string[]>;
  digestsOpen: boolean;
  updatesOpen: boolean;
}

/** Options of {@link ForeignDiscoveryPeer.start}: the comm peer's, plus discovery. */
export interface ForeignDiscoveryPeerOptions extends Omit<ForeignPeerOptions, "onMessage" | "onConnection" | "record"> {
  readonly discovery?: ForeignDiscoveryOptions;
}

/** A Fabric-conformant discovery peer (see the file comment). Stop it with {@link ForeignDiscoveryPeer.stop}. */
export class ForeignDiscoveryPeer {
  readonly events: ForeignDiscoveryEvent[] = [];
  /** Notable incidents (Fabric's WARN lines, roughly), newest last, at most 500. */
  readonly log: string[] = [];
  readonly stats: ForeignDiscoveryStats = {
    requestsReceived: 0,
    responsesSent: 0,
    requestsRefused: 0,
    responsesReceived: 0,
    aliveReceived: 0,
    aliveSent: 0,
    hellosReceived: 0,
    digestsReceived: 0,
    updatesReceived: 0,
    identitiesLearnedByPull: 0,
    rejected: {},
  };
  /** Our incarnation number (ns at start). */
  readonly incNum: bigint;
  seqNum = 0n;
  readonly internalEndpoint: string;
  externalEndpoint: string;

  private readonly members = new Map<string, ForeignMember>();
  private readonly identities = new Map<string, KnownIdentity>();
  /** The alive msgStore of §3.10: newest gossiped timestamp per PKI-ID. */
  private readonly msgStore = new Map<string, { inc: bigint; seq: bigint }>();
  /** Identity pull store: hex PKI-ID -> signed PeerIdentity Envelope. */
  private readonly pullStore = new Map<string, Envelope>();
  /** Hello nonces we answered, for DataRequests (responder side). */
  private readonly helloNonces = new Set<bigint>();
  private readonly nonceWaiters = new Map<bigint, () => void>();
  private readonly dialing = new Map<string, Promise<boolean>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly wakers = new Set<() => void>();
  private round: PullRound | undefined;
  private selfAlive: Envelope | undefined;
  private stopped = false;
  private readonly startedAt = Date.now();
  private readonly cfg: Required<Omit<ForeignDiscoveryOptions, "internalEndpoint" | "externalEndpoint" | "incNum">>;

  private constructor(
    readonly peer: ForeignPeer,
    readonly mspId: string,
    o: ForeignDiscoveryOptions,
  ) {
    const alive = o.aliveIntervalMs ?? 5000;
    const expiration = o.aliveExpirationTimeoutMs ?? 5 * alive;
    this.cfg = {
      bootstrap: o.bootstrap ?? [],
      anchors: o.anchors ?? [],
      metadata: o.metadata ?? new Uint8Array(0),
      aliveIntervalMs: alive,
      aliveExpirationTimeoutMs: expiration,
      expirationCheckIntervalMs: o.expirationCheckIntervalMs ?? expiration / 10,
      reconnectIntervalMs: o.reconnectIntervalMs ?? expiration,
      maxConnectionAttempts: o.maxConnectionAttempts ?? 120,
      connectResponseTimeoutMs: o.connectResponseTimeoutMs ?? 5000,
      pullIntervalMs: o.pullIntervalMs ?? 4000,
      pullPeerNum: o.pullPeerNum ?? 3,
      propagatePeerNum: o.propagatePeerNum ?? 3,
      digestWaitMs: o.digestWaitMs ?? 1000,
      requestWaitMs: o.requestWaitMs ?? 1500,
      responseWaitMs: o.responseWaitMs ?? 2000,
      publishCertPeriodMs: o.publishCertPeriodMs ?? 10_000,
      sync: o.sync ?? true,
      identityPull: o.identityPull ?? true,
    };
    this.incNum = o.incNum ?? nowNs();
    this.internalEndpoint = o.internalEndpoint ?? peer.endpoint;
    this.externalEndpoint = o.externalEndpoint === "listen" ? peer.endpoint : (o.externalEndpoint ?? "");
    const self = this.peer.checkIdentity(this.peer.identity);
    this.identities.set(this.pkiIdHex, {
      identity: this.peer.identity,
      mspId: self.mspId,
      checked: self,
    });
    this.pullStore.set(this.pkiIdHex, this.signedPeerIdentity());
  }

  /** Starts the comm peer and the discovery loops. */
  static async start(o: ForeignDiscoveryPeerOptions): Promise<ForeignDiscoveryPeer> {
    const holder: { d?: ForeignDiscoveryPeer } = {};
    const peer = await ForeignPeer.start({
      ...o,
      record: false,
      onMessage: (from, env, reply) => holder.d?.onMessage(from, env, reply),
      onConnection: (info, ev) => holder.d?.onConnection(info, ev),
    });
    const d = new ForeignDiscoveryPeer(peer, o.mspId, o.discovery ?? {});
    holder.d = d;
    d.run();
    return d;
  }

  /** Our PKI-ID, hex. */
  get pkiIdHex(): string {
    return this.peer.pkiId.toString("hex");
  }

  /** The endpoint it listens on. */
  get endpoint(): string {
    return this.peer.endpoint;
  }

  /** Alive members (not us). */
  alive(): ForeignMember[] {
    return [...this.members.values()].filter((m) => m.state === "alive");
  }

  /** Dead members. */
  dead(): ForeignMember[] {
    return [...this.members.values()].filter((m) => m.state === "dead");
  }

  /** A member by hex PKI-ID. */
  member(pkiIdHex: string): ForeignMember | undefined {
    return this.members.get(pkiIdHex);
  }

  /** PKI-IDs (hex) whose signed PeerIdentity it holds for the identity pull (its own included). */
  pulledIdentities(): string[] {
    return [...this.pullStore.keys()];
  }

  /** The organization (MSP ID) of a PKI-ID, if its identity is known. */
  orgOf(pkiIdHex: string): string | undefined {
    return this.identities.get(pkiIdHex)?.mspId;
  }

  /** Resolves when `cond()` holds (polled every 20 ms), or rejects after `ms`. */
  async waitFor(cond: () => boolean, ms: number, what = "condition"): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) {
        throw new Error(
          `foreign discovery peer: ${what} not met within ${ms} ms; view: ${this.describe()}; log tail: ${this.log.slice(-8).join(" | ")}`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** One line: the view, for failure messages. */
  describe(): string {
    return (
      [...this.members.values()]
        .map((m) => `${m.pkiIdHex.slice(0, 8)} ${m.state} ${m.endpoint}/${m.internalEndpoint} ${m.inc}:${m.seq}`)
        .join(", ") || "(empty)"
    );
  }

  /** Starts Connect to `endpoint` at runtime (bootstrap rules when `bootstrap`, else anchor rules). */
  connect(endpoint: string, bootstrap = true): void {
    void this.connectLoop(endpoint, bootstrap);
  }

  /** Builds and signs a new alive message of ours (consumes a seq_num), with a secret envelope. */
  signAlive(): Envelope {
    this.seqNum++;
    const member = new gossip.Member();
    member.setEndpoint(this.externalEndpoint);
    member.setMetadata(this.cfg.metadata);
    member.setPkiId(this.peer.pkiId);
    const withIdentity = Date.now() - this.startedAt < this.cfg.publishCertPeriodMs;
    const body = Buffer.concat([
      bytesField(1, member.serializeBinary()),
      bytesField(2, Buffer.concat([intField(1, this.incNum), intField(2, this.seqNum)])),
      withIdentity ? bytesField(4, this.peer.identity) : Buffer.alloc(0),
    ]);
    const payload = gm(0n, F.alive, body);
    const secret = new gossip.Secret();
    secret.setInternalendpoint(this.internalEndpoint);
    const secretBytes = secret.serializeBinary();
    const se = new gossip.SecretEnvelope();
    se.setPayload(secretBytes);
    se.setSignature(this.peer.signBytes(secretBytes));
    return envelope(payload, this.peer.signBytes(payload), se);
  }

  /** A MembershipRequest carrying `selfInfo` (outer unsigned). */
  membershipRequest(nonce: bigint, selfInfo: Envelope): Envelope {
    const req = new gossip.MembershipRequest();
    req.setSelfInformation(selfInfo);
    return envelope(gm(nonce, F.memReq, req.serializeBinary()));
  }

  /** Stops the loops and the comm peer (no goodbye: others notice by expiration). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const w of this.wakers) w();
    this.wakers.clear();
    for (const w of this.nonceWaiters.values()) w();
    this.nonceWaiters.clear();
    await this.peer.close();
  }

  // --- loops -------------------------------------------------------------------

  private note(line: string): void {
    this.log.push(line);
    if (this.log.length > 500) this.log.shift();
  }

  private reject(reason: string, detail: string): void {
    this.stats.rejected[reason] = (this.stats.rejected[reason] ?? 0) + 1;
    this.note(`${reason}: ${detail}`);
  }

  /** Sleeps `ms` unless stopped first; resolves false when stopped. */
  private sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.stopped) return resolve(false);
      const wake = () => {
        clearTimeout(t);
        this.timers.delete(t);
        this.wakers.delete(wake);
        resolve(!this.stopped);
      };
      const t = setTimeout(wake, ms);
      this.timers.add(t);
      this.wakers.add(wake);
    });
  }

  private every(ms: number, fn: () => void | Promise<void>, first = false): void {
    void (async () => {
      if (first && !this.stopped) await fn();
      while (await this.sleep(ms)) {
        try {
          await fn();
        } catch (e) {
          this.note(`loop error: ${(e as Error).message}`);
        }
      }
    })();
  }

  private run(): void {
    this.every(this.cfg.aliveIntervalMs, () => this.periodicAlive());
    this.every(this.cfg.expirationCheckIntervalMs, () => this.checkExpiration());
    this.every(this.cfg.reconnectIntervalMs, () => this.reconnectDead(), true);
    if (this.cfg.sync) this.every(this.cfg.pullIntervalMs, () => this.initiateSync(), true);
    if (this.cfg.identityPull) this.every(this.cfg.pullIntervalMs, () => this.pullIdentities());
    for (const b of this.cfg.bootstrap) void this.connectLoop(b, true);
    for (const a of this.cfg.anchors) void this.connectLoop(a, false);
  }

  private isSelfEndpoint(endpoint: string): boolean {
    const port = this.internalEndpoint.split(":").at(-1);
    return [this.internalEndpoint, this.externalEndpoint, `127.0.0.1:${port}`, `localhost:${port}`].includes(endpoint) && endpoint !== "";
  }

  /** §3.2: identify (deep probe), then send a request with a random nonce until it is answered. */
  private async connectLoop(endpoint: string, bootstrap: boolean): Promise<void> {
    if (this.isSelfEndpoint(endpoint)) {
      this.note(`Skipping connecting to myself: ${endpoint}`);
      return;
    }
    let info: ForeignConnInfo | undefined;
    for (let i = 0; i < this.cfg.maxConnectionAttempts && !this.stopped; i++) {
      try {
        const r = await this.peer.connect(endpoint, { probe: true });
        this.putIdentity(r.identity);
        if (bootstrap && r.mspId !== this.mspId) throw new Error(`${endpoint} isn't in our organization, cannot be a bootstrap peer`);
        info = r;
        break;
      } catch (e) {
        this.note(
          `Could not connect to Endpoint: ${endpoint}, InternalEndpoint: ${endpoint}, PKI-ID: <nil>, Metadata:  : ${(e as Error).message}`,
        );
        if (!(await this.sleep(this.cfg.reconnectIntervalMs))) return;
      }
    }
    if (!info) return;
    const selfOrg = info.mspId === this.mspId;
    const alive = this.signAlive();
    const req = this.membershipRequest(randomNonce(), selfOrg ? alive : withoutSecret(alive));
    const nonce = parseGm(req.getPayload_asU8()).nonce;
    const target = { pkiIdHex: info.pkiId.toString("hex"), endpoint };
    for (let i = 0; i < this.cfg.maxConnectionAttempts && !this.stopped; i++) {
      const answered = new Promise<void>((resolve) => this.nonceWaiters.set(nonce, resolve));
      await this.sendTo(target, req);
      const got = await Promise.race([answered.then(() => true), this.sleep(this.cfg.connectResponseTimeoutMs).then(() => false)]);
      this.nonceWaiters.delete(nonce);
      if (got || this.stopped) return;
      if (!(await this.sleep(this.cfg.reconnectIntervalMs))) return;
    }
  }

  private periodicAlive(): void {
    if (this.alive().length === 0) return;
    this.selfAlive = this.signAlive();
    this.route(this.selfAlive, this.pkiIdHex, "");
  }

  /**
   * §3.4: sends alive message `env` about `origin` to up to propagatePeerNum
   * alive members, never back to `prevHop`.
   */
  private route(env: Envelope, origin: string, prevHop: string): void {
    const originOrg = this.orgOf(origin);
    const originEndpoint = origin === this.pkiIdHex ? this.externalEndpoint : (this.members.get(origin)?.endpoint ?? "");
    const candidates = this.alive().filter((m) => m.pkiIdHex !== prevHop);
    if (originOrg === this.mspId && originEndpoint === "") {
      const targets = shuffled(candidates.filter((m) => this.orgOf(m.pkiIdHex) === this.mspId)).slice(0, this.cfg.propagatePeerNum);
      for (const t of targets) void this.sendTo(t, env);
      return;
    }
    if (originOrg === undefined) {
      this.note("Unable to determine organization of peer");
      return;
    }
    const allowed = candidates.filter((m) => {
      const org = this.orgOf(m.pkiIdHex);
      return originOrg === this.mspId || org === this.mspId || org === originOrg;
    });
    for (const t of shuffled(allowed).slice(0, this.cfg.propagatePeerNum)) {
      if (originOrg !== this.mspId && t.endpoint === "") continue;
      void this.sendTo(t, this.orgOf(t.pkiIdHex) === this.mspId ? env : withoutSecret(env));
      this.stats.aliveSent++;
    }
  }

  private checkExpiration(): void {
    const now = Date.now();
    for (const m of this.alive()) {
      if (now - m.lastSeen > this.cfg.aliveExpirationTimeoutMs) {
        this.note(`Haven't heard from ${m.pkiIdHex} for ${now - m.lastSeen} ms`);
        this.expire(m);
      }
    }
  }

  private expire(m: ForeignMember): void {
    if (m.state !== "alive") return;
    m.state = "dead";
    this.events.push({ type: "died", pkiIdHex: m.pkiIdHex, at: Date.now() });
    this.peer.closeConn(m.pkiIdHex);
  }

  /** §3.8: probe every dead member; ask those that answer. */
  private async reconnectDead(): Promise<void> {
    await Promise.all(
      this.dead().map(async (m) => {
        const foreign = this.orgOf(m.pkiIdHex) !== this.mspId;
        const endpoint = foreign ? m.endpoint : this.preferred(m);
        if (endpoint === "") return;
        try {
          await this.peer.ping(endpoint);
        } catch {
          return;
        }
        const alive = this.signAlive();
        await this.sendTo({ pkiIdHex: m.pkiIdHex, endpoint }, this.membershipRequest(0n, foreign ? withoutSecret(alive) : alive));
      }),
    );
  }

  /** §3.9: a request (nonce 0) to random alive members. */
  private initiateSync(): void {
    for (const m of shuffled(this.alive()).slice(0, this.cfg.pullPeerNum)) {
      const alive = this.signAlive();
      void this.sendTo(m, this.membershipRequest(0n, this.orgOf(m.pkiIdHex) === this.mspId ? alive : withoutSecret(alive)));
    }
  }

  /** §4.2 initiator: Hello, digests for digestWaitMs, requests, updates for responseWaitMs. */
  private async pullIdentities(): Promise<void> {
    const targets = shuffled(this.alive()).slice(0, this.cfg.pullPeerNum);
    if (targets.length === 0) return;
    const round: PullRound = {
      hellos: new Map(),
      offers: new Map(),
      digestsOpen: true,
      updatesOpen: true,
    };
    this.round = round;
    for (const t of targets) {
      const nonce = randomNonce();
      round.hellos.set(nonce, t.pkiIdHex);
      void this.sendTo(t, envelope(gm(0n, F.hello, pullMsg(nonce, []))));
    }
    if (!(await this.sleep(this.cfg.digestWaitMs))) return;
    round.digestsOpen = false;
    const perPeer = new Map<string, Uint8Array[]>();
    for (const [item, offerers] of round.offers) {
      if (this.pullStore.has(item)) continue;
      const who = shuffled(offerers)[0] as string;
      const list = perPeer.get(who) ?? [];
      list.push(Buffer.from(item, "hex"));
      perPeer.set(who, list);
    }
    for (const [who, digests] of perPeer) {
      const m = this.members.get(who);
      const nonce = [...round.hellos].find(([, p]) => p === who)?.[0];
      if (m?.state !== "alive" || nonce === undefined) continue;
      void this.sendTo(m, envelope(gm(0n, F.dataReq, pullMsg(nonce, digests))));
    }
    if (!(await this.sleep(this.cfg.responseWaitMs))) return;
    round.updatesOpen = false;
    if (this.round === round) this.round = undefined;
  }

  // --- sending -----------------------------------------------------------------

  private preferred(m: { internalEndpoint?: string; endpoint: string }): string {
    return m.internalEndpoint ? m.internalEndpoint : m.endpoint;
  }

  /**
   * Sends on the connection to the member, dialing its preferred endpoint when
   * there is none; a failed dial presumes it dead (expired at once, §3.8).
   */
  private async sendTo(target: { pkiIdHex: string; endpoint: string; internalEndpoint?: string }, env: Envelope): Promise<void> {
    if (this.stopped) return;
    if (this.peer.sendEnvelope(target.pkiIdHex, env)) return;
    const endpoint = this.preferred(target);
    if (endpoint === "") return;
    let dial = this.dialing.get(target.pkiIdHex);
    if (!dial) {
      dial = this.peer.connect(endpoint).then((info) => {
        this.putIdentity(info.identity);
        if (info.pkiId.toString("hex") !== target.pkiIdHex) {
          this.peer.closeConn(info.pkiId.toString("hex"));
          throw new Error(`PKI-ID of remote peer doesn't match expected PKI-ID at ${endpoint}`);
        }
        return true;
      });
      const settled = dial.catch((e: unknown) => {
        this.note(`presumed dead ${target.pkiIdHex.slice(0, 8)} at ${endpoint}: ${(e as Error).message}`);
        const m = this.members.get(target.pkiIdHex);
        if (m) this.expire(m);
        return false;
      });
      this.dialing.set(target.pkiIdHex, settled);
      void settled.finally(() => this.dialing.delete(target.pkiIdHex));
      dial = settled;
    }
    if ((await dial) && !this.stopped) this.peer.sendEnvelope(target.pkiIdHex, env);
  }

  // --- receiving ---------------------------------------------------------------

  private onConnection(info: ForeignConnInfo, ev: "up" | "down"): void {
    if (ev === "up") this.putIdentity(info.identity);
  }

  private putIdentity(identity: Uint8Array): KnownIdentity | undefined {
    let checked: ForeignIdentity;
    try {
      checked = this.peer.checkIdentity(identity);
    } catch (e) {
      this.reject("identity", (e as Error).message);
      return undefined;
    }
    const hex = checked.pkiId.toString("hex");
    const known = this.identities.get(hex);
    if (known) return known;
    const k = { identity, mspId: checked.mspId, checked };
    this.identities.set(hex, k);
    return k;
  }

  private onMessage(from: ForeignConnInfo, env: Envelope, reply: (env: Envelope) => void): void {
    if (this.stopped) return;
    let m: Gm;
    try {
      m = parseGm(env.getPayload_asU8());
    } catch {
      this.reject("malformed", "unparsable GossipMessage");
      return;
    }
    const fromHex = from.pkiId.toString("hex");
    const discovery = [F.alive, F.memReq, F.memRes, F.hello, F.dataDig, F.dataReq, F.dataUpdate] as number[];
    if (m.content === undefined || !discovery.includes(m.content)) return;
    if (m.tag !== tagEmpty) {
      this.reject("tag", `Tag of ${m.content} isn't legal: ${m.tag}`);
      return;
    }
    try {
      switch (m.content) {
        case F.alive:
          this.onGossipedAlive(env, m, fromHex);
          return;
        case F.memReq:
          this.onRequest(m, from);
          return;
        case F.memRes:
          this.onResponse(m);
          return;
        case F.hello:
          this.onHello(m, from, reply);
          return;
        case F.dataDig:
          this.onDigest(m, fromHex);
          return;
        case F.dataReq:
          this.onDataRequest(m, from, reply);
          return;
        case F.dataUpdate:
          this.onDataUpdate(m);
          return;
      }
    } catch (e) {
      this.reject("malformed", (e as Error).message);
    }
  }

  /**
   * §2.1 / §4.3: structure, identity (carried or known), signature over the
   * received payload, and the secret envelope's. Returns the verified internal
   * endpoint ("" without secret envelope), or undefined when rejected.
   */
  private validateAlive(env: Envelope, a: ParsedAlive): string | undefined {
    if (a.pkiId.length === 0 || env.getPayload_asU8().length === 0 || env.getSignature_asU8().length === 0 || !a.hasTimestamp) {
      this.reject("invalid_alive", "Invalid alive message");
      return undefined;
    }
    const hex = a.pkiId.toString("hex");
    let known: KnownIdentity | undefined;
    if (a.identity) {
      known = this.putIdentity(a.identity);
      if (!known?.checked.pkiId.equals(a.pkiId)) {
        this.reject("identity", `Failed validating identity of ${hex}: identity doesn't match the computed pkiID`);
        return undefined;
      }
    } else {
      known = this.identities.get(hex);
      if (!known) {
        this.reject("no_certificate", `Don't have certificate for ${hex}`);
        return undefined;
      }
    }
    if (!this.peer.verifyBytes(known.checked.cert, env.getSignature_asU8(), env.getPayload_asU8())) {
      this.reject("bad_signature", `Failed verifying: ${hex}`);
      return undefined;
    }
    const se = env.getSecretEnvelope();
    if (!se) return "";
    if (se.getPayload_asU8().length === 0 || !this.peer.verifyBytes(known.checked.cert, se.getSignature_asU8(), se.getPayload_asU8())) {
      this.reject("bad_signature", `Failed verifying secret envelope of ${hex}`);
      return undefined;
    }
    return gossip.Secret.deserializeBinary(se.getPayload_asU8()).getInternalendpoint();
  }

  private checkValid(a: ParsedAlive): boolean {
    const stored = this.msgStore.get(a.pkiId.toString("hex"));
    return !stored || newer(a, stored);
  }

  /** §3.5 handleAliveMessage: learn, resurrect or refresh on a strictly newer timestamp. */
  private handleAlive(env: Envelope, a: ParsedAlive, internal: string): void {
    const hex = a.pkiId.toString("hex");
    if (hex === this.pkiIdHex) return;
    const m = this.members.get(hex);
    const now = Date.now();
    if (!m) {
      this.members.set(hex, {
        pkiIdHex: hex,
        pkiId: a.pkiId,
        endpoint: a.endpoint,
        internalEndpoint: internal,
        metadata: a.metadata,
        inc: a.inc,
        seq: a.seq,
        lastSeen: now,
        state: "alive",
        stored: env,
      });
      this.events.push({ type: "joined", pkiIdHex: hex, at: now });
      return;
    }
    if (!newer(a, m)) return;
    const wasDead = m.state === "dead";
    Object.assign(m, {
      endpoint: a.endpoint,
      metadata: a.metadata,
      inc: a.inc,
      seq: a.seq,
      lastSeen: now,
      state: "alive",
      stored: env,
    });
    if (internal !== "") m.internalEndpoint = internal;
    if (wasDead) this.events.push({ type: "revived", pkiIdHex: hex, at: now });
  }

  private onGossipedAlive(env: Envelope, m: Gm, fromHex: string): void {
    this.stats.aliveReceived++;
    const a = parseAlive(m.body);
    if (!a) {
      this.reject("invalid_alive", "Invalid alive message: no membership");
      return;
    }
    if (!this.checkValid(a)) return;
    const internal = this.validateAlive(env, a);
    if (internal === undefined) return;
    const hex = a.pkiId.toString("hex");
    if (hex === this.pkiIdHex) {
      if (a.endpoint !== this.externalEndpoint || (internal !== "" && internal !== this.internalEndpoint)) {
        this.note("Bad configuration detected: Received AliveMessage from a peer with the same PKI-ID as myself");
      }
      return;
    }
    this.msgStore.set(hex, { inc: a.inc, seq: a.seq });
    this.handleAlive(env, a, internal);
    this.route(env, hex, fromHex);
  }

  /** §3.11: may alive message about `x` go to requester `r`? */
  private disclose(rHex: string, xHex: string): boolean {
    const rOrg = this.orgOf(rHex);
    if (rOrg === undefined) {
      this.note(`Cannot determine organization of ${rHex}`);
      return false;
    }
    const xOrg = this.orgOf(xHex);
    if (xOrg === undefined) return false;
    if (xOrg === rOrg) return true;
    const xEndpoint = xHex === this.pkiIdHex ? this.externalEndpoint : (this.members.get(xHex)?.endpoint ?? "");
    const rEndpoint = this.members.get(rHex)?.endpoint ?? "";
    return xOrg === this.mspId && xEndpoint !== "" && rEndpoint !== "";
  }

  /** §3.6. */
  private onRequest(m: Gm, from: ForeignConnInfo): void {
    this.stats.requestsReceived++;
    const fromHex = from.pkiId.toString("hex");
    const req = gossip.MembershipRequest.deserializeBinary(m.body);
    const self = req.getSelfInformation();
    if (!self) {
      this.reject("request", "Got membership request with invalid selfInfo");
      return;
    }
    const inner = parseGm(self.getPayload_asU8());
    if (inner.content !== F.alive) {
      this.reject("request", "Got membership request with selfInfo that isn't an AliveMessage");
      return;
    }
    const a = parseAlive(inner.body);
    if (!a) {
      this.reject("request", "Got membership request with invalid selfInfo");
      return;
    }
    if (a.pkiId.toString("hex") !== fromHex) {
      this.reject("request", "Got membership request with selfInfo that doesn't match the handshake");
      return;
    }
    const internal = this.validateAlive(self, a);
    if (internal === undefined) return;
    if (this.checkValid(a)) this.handleAlive(self, a, internal);
    if (!this.disclose(fromHex, this.pkiIdHex)) {
      this.stats.requestsRefused++;
      this.note(
        `Got a membership request from a peer that shouldn't have sent one: ${fromHex}, closing connection to the peer as a result.`,
      );
      this.peer.closeConn(fromHex);
      return;
    }
    const strip = this.orgOf(fromHex) !== this.mspId;
    const res = new gossip.MembershipResponse();
    for (const x of this.alive()) {
      // The requester too, just learned from its request (Fabric's aliveMembership holds it).
      if (this.disclose(fromHex, x.pkiIdHex)) res.addAlive(strip ? withoutSecret(x.stored) : x.stored);
    }
    for (const x of this.dead()) {
      if (this.disclose(fromHex, x.pkiIdHex)) res.addDead(strip ? withoutSecret(x.stored) : x.stored);
    }
    this.selfAlive ??= this.signAlive();
    res.addAlive(strip ? withoutSecret(this.selfAlive) : this.selfAlive);
    this.stats.responsesSent++;
    const member = this.members.get(fromHex);
    void this.sendTo(
      {
        pkiIdHex: fromHex,
        endpoint: member?.endpoint ?? a.endpoint,
        internalEndpoint: internal || member?.internalEndpoint,
      },
      envelope(gm(m.nonce, F.memRes, res.serializeBinary())),
    );
  }

  /** §3.7. */
  private onResponse(m: Gm): void {
    this.stats.responsesReceived++;
    this.nonceWaiters.get(m.nonce)?.();
    const res = gossip.MembershipResponse.deserializeBinary(m.body);
    for (const env of res.getAliveList()) {
      let a: ParsedAlive | undefined;
      try {
        const inner = parseGm(env.getPayload_asU8());
        if (inner.content !== F.alive) {
          this.reject("response", "Expected alive message, got something else instead");
          return;
        }
        a = parseAlive(inner.body);
      } catch {
        a = undefined;
      }
      if (!a) {
        this.reject("response", "Membership response contains an invalid message from an online peer");
        return;
      }
      if (a.pkiId.toString("hex") === this.pkiIdHex || !this.checkValid(a)) continue;
      const internal = this.validateAlive(env, a);
      if (internal !== undefined) this.handleAlive(env, a, internal);
    }
    for (const env of res.getDeadList()) {
      let a: ParsedAlive | undefined;
      try {
        const inner = parseGm(env.getPayload_asU8());
        a = inner.content === F.alive ? parseAlive(inner.body) : undefined;
      } catch {
        a = undefined;
      }
      if (!a) {
        this.reject("response", "Membership response contains an invalid message from an offline peer");
        return;
      }
      const hex = a.pkiId.toString("hex");
      if (hex === this.pkiIdHex || this.members.has(hex) || !this.checkValid(a)) continue;
      const internal = this.validateAlive(env, a);
      if (internal === undefined) continue;
      this.members.set(hex, {
        pkiIdHex: hex,
        pkiId: a.pkiId,
        endpoint: a.endpoint,
        internalEndpoint: internal,
        metadata: a.metadata,
        inc: a.inc,
        seq: a.seq,
        lastSeen: Date.now(),
        state: "dead",
        stored: env,
      });
    }
  }

  // --- identity pull (§4.2) ----------------------------------------------------------

  private signedPeerIdentity(): Envelope {
    const pi = new gossip.PeerIdentity();
    pi.setPkiId(this.peer.pkiId);
    pi.setCert(this.peer.identity);
    const payload = gm(0n, F.peerIdentity, pi.serializeBinary());
    return envelope(payload, this.peer.signBytes(payload));
  }

  /** Identities (hex) the requester may get (egress filter). */
  private pullFilter(requester: ForeignConnInfo): (itemHex: string) => boolean {
    const rOrg = requester.mspId;
    if (!rOrg) return () => false;
    if (rOrg === this.mspId) return () => true;
    return (item) => {
      const org = this.orgOf(item);
      const endpoint = item === this.pkiIdHex ? this.externalEndpoint : (this.members.get(item)?.endpoint ?? "");
      return endpoint !== "" && (org === this.mspId || org === rOrg);
    };
  }

  private onHello(m: Gm, from: ForeignConnInfo, reply: (env: Envelope) => void): void {
    const p = parsePull(m.body);
    if (p.msgType !== identityMsg) return;
    this.stats.hellosReceived++;
    this.helloNonces.add(p.nonce);
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.helloNonces.delete(p.nonce);
    }, this.cfg.requestWaitMs);
    this.timers.add(t);
    const allow = this.pullFilter(from);
    const items = [...this.pullStore.keys()].filter(allow).map((h) => Buffer.from(h, "hex"));
    if (items.length > 0) reply(envelope(gm(0n, F.dataDig, pullMsg(p.nonce, items))));
  }

  private onDigest(m: Gm, fromHex: string): void {
    const p = parsePull(m.body);
    if (p.msgType !== identityMsg) return;
    this.stats.digestsReceived++;
    const round = this.round;
    if (!round?.digestsOpen || round.hellos.get(p.nonce) !== fromHex) return;
    for (const d of p.items) {
      const h = Buffer.from(d).toString("hex");
      const list = round.offers.get(h) ?? [];
      if (!list.includes(fromHex)) list.push(fromHex);
      round.offers.set(h, list);
    }
  }

  private onDataRequest(m: Gm, from: ForeignConnInfo, reply: (env: Envelope) => void): void {
    const p = parsePull(m.body);
    if (p.msgType !== identityMsg || !this.helloNonces.has(p.nonce)) return;
    const allow = this.pullFilter(from);
    const items: Uint8Array[] = [];
    for (const d of p.items) {
      const h = Buffer.from(d).toString("hex");
      const env = this.pullStore.get(h);
      if (env && allow(h)) items.push(env.serializeBinary());
    }
    if (items.length > 0) reply(envelope(gm(0n, F.dataUpdate, pullMsg(p.nonce, items))));
  }

  private onDataUpdate(m: Gm): void {
    const p = parsePull(m.body);
    if (p.msgType !== identityMsg) return;
    this.stats.updatesReceived++;
    const valid: { hex: string; env: Envelope; identity: Uint8Array }[] = [];
    for (const item of p.items) {
      const env = gossip.Envelope.deserializeBinary(item);
      const inner = parseGm(env.getPayload_asU8());
      if (inner.content !== F.peerIdentity) {
        this.reject("data_update", "Got a non-identity message, aborting");
        return;
      }
      const pi = gossip.PeerIdentity.deserializeBinary(inner.body);
      let checked: ForeignIdentity;
      try {
        checked = this.peer.checkIdentity(pi.getCert_asU8());
      } catch (e) {
        this.reject("data_update", `Failed validating identity message: ${(e as Error).message}`);
        return;
      }
      if (!checked.pkiId.equals(Buffer.from(pi.getPkiId_asU8()))) {
        this.reject("data_update", "identity doesn't match the computed pkiID");
        return;
      }
      if (!this.peer.verifyBytes(checked.cert, env.getSignature_asU8(), env.getPayload_asU8())) {
        this.reject("data_update", "Data update contains an invalid message: bad signature");
        return;
      }
      valid.push({
        hex: checked.pkiId.toString("hex"),
        env,
        identity: pi.getCert_asU8(),
      });
    }
    const inRound = this.round?.updatesOpen === true && this.round.hellos.has(p.nonce);
    for (const v of valid) {
      if (!this.identities.has(v.hex)) this.stats.identitiesLearnedByPull++;
      this.putIdentity(v.identity);
      if (inRound && !this.pullStore.has(v.hex)) this.pullStore.set(v.hex, v.env);
    }
  }
}
