/**
 * Shared pieces of the bad-input tests: forged and honest alive messages,
 * requests and responses, a signature-counting crypto, a dialer whose
 * streams stop reading, and a target peer with an honest member and a raw
 * attacker.
 */
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import type { CryptoService } from "../../src/core/crypto.js";
import { pkiIdHex } from "../../src/core/identity.js";
import type { Dialer, WireStream } from "../../src/core/transport.js";
import {
  type Envelope,
  GossipMessage_Tag,
  GossipMessageSchema,
  MembershipRequestSchema,
  MembershipResponseSchema,
} from "../../src/gen/gossip/message_pb.js";
import { aliveMessage, signAlive } from "../../src/membership/alive-message.js";
import type { FakeCrypto } from "../helpers/fake-crypto.js";
import { Sim, type SimPeer } from "./sim.js";

export interface AliveOpts {
  seq?: bigint;
  inc?: bigint;
  endpoint?: string;
  internal?: string;
  identity?: boolean;
  tag?: GossipMessage_Tag;
  /** Claim this identity's PKI-ID (and carry it), but sign with `crypto`. */
  claim?: CryptoService;
  metadata?: Uint8Array;
}

export function alive(crypto: CryptoService, o: AliveOpts = {}): Envelope {
  const who = o.claim ?? crypto;
  const msg = aliveMessage({
    endpoint: o.endpoint ?? "",
    pkiId: who.pkiIdOf(who.identity),
    metadata: o.metadata ?? new Uint8Array(0),
    timestamp: { incNum: o.inc ?? 1_000n, seqNum: o.seq ?? 1n },
    identity: o.identity === false ? undefined : who.identity,
  });
  if (o.tag !== undefined) msg.tag = o.tag;
  return signAlive(crypto, msg, o.internal ?? "");
}

export function request(self: Envelope, nonce = 0n) {
  return create(GossipMessageSchema, {
    tag: GossipMessage_Tag.EMPTY,
    nonce,
    content: {
      case: "memReq",
      value: create(MembershipRequestSchema, { selfInformation: self }),
    },
  });
}

export function response(alive: Envelope[], dead: Envelope[] = [], nonce = 0n) {
  return create(GossipMessageSchema, {
    tag: GossipMessage_Tag.EMPTY,
    nonce,
    content: {
      case: "memRes",
      value: create(MembershipResponseSchema, { alive, dead }),
    },
  });
}

/** Counts signature verifications of `crypto`. */
export function countingVerify(crypto: FakeCrypto): {
  crypto: FakeCrypto;
  count: () => number;
} {
  let n = 0;
  const c = Object.assign(Object.create(crypto) as FakeCrypto, {
    verify: (i: Uint8Array, s: Uint8Array, d: Uint8Array) => {
      n++;
      crypto.verify(i, s, d);
    },
  });
  return { crypto: c, count: () => n };
}

/** A dialer wrapper whose streams stop reading while `on` (the remote's writes then wait on flow control). */
export function stallableReads() {
  let release = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const state = {
    on: false,
    release: () => release(),
    wrap: (d: Dialer): Dialer => ({
      ping: (endpoint, o) => d.ping(endpoint, o),
      openStream: async (endpoint, o) => {
        const s = await d.openStream(endpoint, o);
        const incoming: AsyncIterable<readonly Envelope[]> = {
          [Symbol.asyncIterator]: () => {
            const it = s.incoming[Symbol.asyncIterator]();
            return {
              next: async () => {
                if (state.on) await released;
                return it.next();
              },
              return: async () => (await it.return?.()) ?? { done: true, value: undefined },
            };
          },
        };
        return new Proxy(s, {
          get(target, p) {
            if (p === "incoming") return incoming;
            const v = Reflect.get(target, p, target) as unknown;
            return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
          },
        }) as WireStream;
      },
    }),
  };
  return state;
}

/** A target peer `t`, an honest peer `n` that joined it, and a raw (membership-less) attacker `r`. */
export async function setup(
  seed: number,
  o: {
    targetCrypto?: CryptoService;
    verifications?: number;
    rawSendBuffer?: number;
  } = {},
) {
  const sim = new Sim(seed);
  const t = sim.add("t", {
    crypto: o.targetCrypto,
    options: { maxVerificationsPerPeerPerSecond: o.verifications },
  });
  const n = sim.add("n", { bootstrap: ["t:7051"] });
  const r = sim.add("r", {
    raw: true,
    comm: o.rawSendBuffer ? { sendBuffSize: o.rawSendBuffer } : undefined,
  });
  await sim.converge(() => 1, 10_000, 100);
  const to = { endpoint: t.endpoint, pkiId: t.comm.pkiId };
  const send = async (m: Parameters<SimPeer["comm"]["send"]>[0]) => {
    await r.comm.send(m, to);
    await sim.clock.advance(50);
  };
  const refused = (key: string) => t.membership.stats().refused[key] ?? 0;
  const healthy = () => {
    const alive = t.membership.alive().map((m) => m.pkiIdHex);
    assert.ok(alive.includes(pkiIdHex(n.comm.pkiId)), "the honest member is still alive");
  };
  return { sim, t, n, r, send, refused, healthy };
}
