/**
 * Our own alive messages (Fabric's `self`, `incTime`, `seqNum` and
 * `selfAliveMessage`): every message we sign about ourselves consumes a new
 * sequence number, so receivers always see a strictly newer timestamp; the
 * identity rides along during the publish-cert period.
 */
import type { Clock } from "../core/clock.js";
import type { CryptoService } from "../core/crypto.js";
import { decodeEnvelope, envelopeBytes } from "../core/envelope.js";
import type { PkiId } from "../core/identity.js";
import type { Envelope } from "../gen/gossip/message_pb.js";
import { aliveMessage, signAlive } from "./alive-message.js";
import type { MembershipConfig } from "./config.js";
import { bytesOf, ownedBuffer } from "./owned-bytes.js";
import { newIncNum, type Timestamp } from "./timestamp.js";

/** What our alive messages are made of. */
export interface SelfAliveInit {
  readonly crypto: CryptoService;
  readonly clock: Clock;
  readonly config: MembershipConfig;
  /** Wall-clock ms since the epoch (inc_num). */
  readonly wallClockMs: () => number;
  readonly pkiId: PkiId;
}

/** Signs alive messages about us and remembers the last periodic one. */
export class SelfAlive {
  /** Our external endpoint ("" = invisible to other organizations). */
  endpoint: string;
  metadata: Uint8Array;
  private readonly incNum: bigint;
  private seqNum = 0n;
  private readonly startedAt: number;
  /**
   * The last periodic message's bytes, decoded again for each response (the
   * same bytes go out): the signed Envelope, its secret envelope and their
   * four byte arrays cost ~0.8 KB of heap per peer more than the buffer.
   */
  private lastPeriodic: ArrayBuffer | undefined;

  constructor(private readonly init: SelfAliveInit) {
    this.endpoint = init.config.externalEndpoint;
    this.metadata = init.config.metadata;
    this.incNum = newIncNum(init.wallClockMs);
    this.startedAt = init.clock.now();
  }

  /** Our internal endpoint (disclosed to our organization only, in the secret envelope). */
  get internalEndpoint(): string {
    return this.init.config.internalEndpoint;
  }

  /** The timestamp of the last message signed (seq 0 before the first). */
  get timestamp(): Timestamp {
    return { incNum: this.incNum, seqNum: this.seqNum };
  }

  /** Signs a new alive message about us (consumes a sequence number), secret envelope included. */
  sign(): Envelope {
    this.seqNum++;
    const c = this.init.config;
    const withIdentity = this.init.clock.now() - this.startedAt < c.publishCertPeriodMs;
    const msg = aliveMessage({
      endpoint: this.endpoint,
      pkiId: this.init.pkiId,
      metadata: this.metadata,
      timestamp: { incNum: this.incNum, seqNum: this.seqNum },
      identity: withIdentity ? this.init.crypto.identity : undefined,
    });
    return signAlive(this.init.crypto, msg, c.internalEndpoint);
  }

  /** Signs the periodic alive message and keeps it for membership responses. */
  signPeriodic(): Envelope {
    const env = this.sign();
    this.lastPeriodic = ownedBuffer(envelopeBytes(env));
    return env;
  }

  /** Our entry of a membership response: the last periodic message, or a fresh one before the first. */
  forResponse(): Envelope {
    return this.lastPeriodic === undefined ? this.sign() : decodeEnvelope(bytesOf(this.lastPeriodic));
  }
}
