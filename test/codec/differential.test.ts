// Differential property tests: the compiled codec against protobuf-es itself,
// over random messages of every type GossipMessage reaches (every content
// case included), and over garbage, truncated and mutated encodings.
//
// The contract checked: encodeMessage(s, m) is byte-identical to
// toBinary(s, m), or throws what it throws; decodeMessage(s, b) is deep-equal
// to fromBinary(s, b), or throws what it throws. The compiled paths must
// actually be taken for canonical input (a test that only ever fell back
// would prove nothing), and where they are taken they must agree exactly.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, type DescField, type DescMessage, equals, fromBinary, type Message, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { peekAlive } from "../../src/codec/alive-peek.js";
import { decodeCompiled } from "../../src/codec/decoder.js";
import { decodeHotEnvelope, decodeHotEnvelopeIn, decodeHotGossipMessage, encodeHotEnvelope } from "../../src/codec/hot-path.js";
import { compileEncoder, decodeMessage, encodeMessage } from "../../src/codec/index.js";
import {
  decodeEnvelope,
  decodeEnvelopeIn,
  encodeEnvelope,
  encodeUnsignedEnvelope,
  noopSign,
  parseGossipMessage,
  receivedFrame,
} from "../../src/core/envelope.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import { type SignaturePolicy, SignaturePolicySchema } from "../../src/gen/common/policies_pb.js";
import {
  type AliveMessage,
  type Envelope,
  EnvelopeSchema,
  type GossipMessage,
  type GossipMessage_Tag,
  GossipMessageSchema,
  PeerTimeSchema,
  SecretEnvelopeSchema,
} from "../../src/gen/gossip/message_pb.js";
import { messageArb, messageWithCaseArb, reachableMessages } from "./arbitraries.js";

const types = reachableMessages(GossipMessageSchema);
const content = GossipMessageSchema.oneofs.find((o) => o.localName === "content");
const runs = (numRuns: number) => ({
  numRuns,
  endOnFailure: true,
  includeErrorInReport: true,
});

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

function outcome(f: () => unknown): Outcome {
  try {
    return { ok: true, value: f() };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * Both succeeded with deep-equal values, or both threw errors of the same
 * class and message. A TypeError is V8's own (a bigint where a number goes,
 * in protobuf-es as in ours): V8 words it by how far the code is optimised,
 * so only its class is compared (seed 2045414762 once saw two wordings).
 */
function assertSameOutcome(actual: Outcome, expected: Outcome, what: string): void {
  if (actual.ok && expected.ok) {
    assert.deepStrictEqual(actual.value, expected.value, what);
    return;
  }
  assert.equal(
    actual.ok,
    expected.ok,
    `${what}: ${actual.ok ? "succeeded" : `threw ${String((actual as { error: unknown }).error)}`}, protobuf-es ${expected.ok ? "succeeded" : `threw ${String((expected as { error: unknown }).error)}`}`,
  );
  const a = (actual as { error: Error }).error;
  const e = (expected as { error: Error }).error;
  assert.equal(a.constructor, e.constructor, what);
  if (!(e instanceof TypeError)) assert.equal(a.message, e.message, what);
}

/**
 * decodeMessage agrees with fromBinary on `bytes`; returns whether the
 * compiled path decoded them (it must then agree on its own, not by falling back).
 */
function checkDecode(schema: DescMessage, bytes: Uint8Array): boolean {
  const expected = outcome(() => fromBinary(schema, bytes));
  assertSameOutcome(
    outcome(() => decodeMessage(schema, bytes)),
    expected,
    `decode ${schema.typeName}`,
  );
  const compiled = decodeCompiled(schema, bytes);
  if (compiled === undefined) return false;
  assert.ok(expected.ok, `the compiled path accepted input protobuf-es rejects: ${String((expected as { error: unknown }).error)}`);
  assert.deepStrictEqual(compiled, expected.value);
  assert.ok(equals(schema, compiled, expected.value as Message));
  return true;
}

/** encodeMessage is byte-identical to toBinary through the compiled path, and decoding gives fromBinary's result through it. */
function checkRoundTrip(schema: DescMessage, msg: Message): void {
  const expected = toBinary(schema, msg);
  const measured = compileEncoder(schema)?.measure(msg);
  assert.ok(measured, `${schema.typeName}: a valid message is encoded by the compiled path`);
  const buf = new Uint8Array(measured.size);
  assert.equal(measured.write(buf, 0), expected.length);
  assert.deepEqual(buf, expected);
  assert.deepEqual(encodeMessage(schema, msg), expected);
  assert.ok(checkDecode(schema, expected), `${schema.typeName}: a canonical encoding is decoded by the compiled path`);
}

/** Ways to damage an encoding. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("set" as const),
    at: fc.nat(),
    byte: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }),
  }),
  fc.record({
    kind: fc.constant("delete" as const),
    at: fc.nat(),
    n: fc.integer({ min: 1, max: 3 }),
  }),
  // A one-byte varint (a tag, a length, a value) made overlong: same value, 2 to 8 bytes.
  fc.record({
    kind: fc.constant("overlong" as const),
    at: fc.nat(),
    extra: fc.integer({ min: 1, max: 7 }),
  }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(b: Uint8Array, m: Mutation): Uint8Array {
  const at = b.length === 0 ? 0 : m.at % (b.length + 1);
  switch (m.kind) {
    case "truncate":
      return b.subarray(0, at);
    case "set": {
      const out = Uint8Array.from(b);
      if (at < out.length) out[at] = m.byte;
      return out;
    }
    case "insert":
      return Uint8Array.from([...b.subarray(0, at), ...m.bytes, ...b.subarray(at)]);
    case "delete":
      return Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + m.n)]);
    case "overlong": {
      const v = b[at];
      if (v === undefined || v >= 0x80) return b;
      const pad = [v | 0x80, ...Array<number>(m.extra - 1).fill(0x80), 0x00];
      return Uint8Array.from([...b.subarray(0, at), ...pad, ...b.subarray(at + 1)]);
    }
  }
}

describe("codec against protobuf-es, over random messages", () => {
  it(`covers every type GossipMessage reaches (${types.length}) and every content case`, () => {
    for (const t of [
      "gossip.Envelope",
      "gossip.SecretEnvelope",
      "gossip.AliveMessage",
      "protos.CollectionConfigPackage",
      "common.SignaturePolicy",
    ]) {
      assert.ok(
        types.some((d) => d.typeName === t),
        t,
      );
    }
    assert.equal(content?.fields.length, 21, "GossipMessage.content cases (a new one is covered by the loop below)");
    for (const d of types) assert.ok(compileEncoder(d), `${d.typeName} is compiled`);
  });

  for (const field of content?.fields ?? []) {
    it(`GossipMessage with content ${field.localName}: encodes byte for byte, decodes equal`, () => {
      fc.assert(
        fc.property(messageWithCaseArb<GossipMessage>(GossipMessageSchema, field), (m) => {
          assert.equal(m.content.case, field.localName);
          checkRoundTrip(GossipMessageSchema, m);
        }),
        runs(25),
      );
    });
  }

  it("every nested message type, as the top message: encodes byte for byte, decodes equal", () => {
    for (const d of types) {
      fc.assert(
        fc.property(messageArb(d), (m) => checkRoundTrip(d, m)),
        runs(15),
      );
    }
  });

  it("concatenated encodings (merging, repeated fields appended, last scalar wins) decode as protobuf-es does", () => {
    const arb = messageArb<GossipMessage>(GossipMessageSchema);
    fc.assert(
      fc.property(arb, arb, (a, b) => {
        const both = Uint8Array.from([...toBinary(GossipMessageSchema, a), ...toBinary(GossipMessageSchema, b)]);
        assert.ok(checkDecode(GossipMessageSchema, both), "a concatenation is valid protobuf, decoded by the compiled path");
      }),
      runs(100),
    );
  });
});

describe("codec against protobuf-es, over invalid input", () => {
  it("random bytes: same message or same error as fromBinary, for every type", () => {
    for (const d of types) {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 40 }), (b) => {
          checkDecode(d, b);
        }),
        runs(30),
      );
    }
  });

  it("truncations of valid encodings (every cut of those under 128 bytes, about 64 spread over longer ones): same message or same error as fromBinary", () => {
    let compiled = 0;
    fc.assert(
      fc.property(messageArb<GossipMessage>(GossipMessageSchema), (m) => {
        const b = toBinary(GossipMessageSchema, m);
        const step = Math.max(1, Math.floor(b.length / 64));
        for (let cut = 0; cut < b.length; cut += step) if (checkDecode(GossipMessageSchema, b.subarray(0, cut))) compiled++;
      }),
      runs(60),
    );
    assert.ok(compiled > 0, "some truncations are valid messages the compiled path decodes");
  });

  it("mutated encodings (bytes set, inserted, deleted, varints made overlong): same message or same error as fromBinary", () => {
    let compiled = 0;
    let rejected = 0;
    const schemas: DescMessage[] = [GossipMessageSchema, EnvelopeSchema, SignaturePolicySchema];
    const messages = fc.constantFrom(...schemas).chain((schema) => messageArb(schema).map((m) => [schema, m] as const));
    fc.assert(
      fc.property(messages, fc.array(mutation, { minLength: 1, maxLength: 3 }), ([schema, m], ms) => {
        const b = ms.reduce(mutate, toBinary(schema, m));
        if (checkDecode(schema, b)) compiled++;
        else if (!outcome(() => fromBinary(schema, b)).ok) rejected++;
      }),
      runs(600),
    );
    assert.ok(compiled > 0 && rejected > 0, `both outcomes seen (compiled ${compiled}, rejected ${rejected})`);
  });

  it("a tag longer than 5 bytes is rejected as protobuf-es rejects it, even when it holds a small field number", () => {
    // nonce (field 1, varint) with its one-byte tag 0x08 padded to 6 bytes, value 5.
    const b = new Uint8Array([0x88, 0x80, 0x80, 0x80, 0x80, 0x00, 0x05]);
    assert.throws(() => fromBinary(GossipMessageSchema, b), /illegal tag/);
    assert.equal(decodeCompiled(GossipMessageSchema, b), undefined);
    assert.throws(() => decodeMessage(GossipMessageSchema, b), /illegal tag/);
    // Padded to 5 bytes it is still a valid tag.
    assert.ok(checkDecode(GossipMessageSchema, new Uint8Array([0x88, 0x80, 0x80, 0x80, 0x00, 0x05])));
  });

  it("nesting up to protobuf-es' recursion limit decodes, one level more fails as there", () => {
    const nest = (levels: number): SignaturePolicy => {
      // Each SignaturePolicy below the top adds two levels (NOutOf, SignaturePolicy).
      let p = create(SignaturePolicySchema, {
        Type: { case: "signedBy", value: 1 },
      });
      for (let i = 1; i < levels; i += 2) {
        p = create(SignaturePolicySchema, {
          Type: { case: "nOutOf", value: { n: 1, rules: [p] } },
        });
      }
      return p;
    };
    assert.ok(checkDecode(SignaturePolicySchema, toBinary(SignaturePolicySchema, nest(99))), "99 levels");
    const tooDeep = toBinary(SignaturePolicySchema, nest(101));
    assert.throws(() => fromBinary(SignaturePolicySchema, tooDeep), /recursion/);
    assert.equal(checkDecode(SignaturePolicySchema, tooDeep), false);
  });
});

/** Values of the wrong type or range for some field, put anywhere in a message by the tests below. */
const oddValues: readonly unknown[] = [
  5,
  2 ** 40,
  -1,
  1.5,
  Number.NaN,
  "x",
  "",
  null,
  [1],
  new Uint8Array([1]),
  BigInt(5),
  BigInt(-1),
  BigInt(2) ** BigInt(64),
  true,
  {},
  undefined,
];

describe("64-bit varints against protobuf-es", () => {
  // Every alive message carries a 9-byte inc_num and most nonces are 10-byte
  // varints: the reader builds them from two 32-bit halves and the writer
  // splits them the same way, so every bit position and length is checked.
  const u64 = fc.oneof(
    fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    fc.integer({ min: 0, max: 63 }).map((bit) => 1n << BigInt(bit)),
    fc.integer({ min: 1, max: 64 }).map((bits) => (1n << BigInt(bits)) - 1n),
  );

  it("every uint64 encodes byte for byte and decodes to the same bigint", () => {
    fc.assert(
      fc.property(u64, u64, (incNum, seqNum) => {
        const m = create(PeerTimeSchema, { incNum, seqNum });
        const bytes = toBinary(PeerTimeSchema, m);
        assert.deepEqual(new Uint8Array(encodeMessage(PeerTimeSchema, m)), bytes);
        const decoded = decodeCompiled(PeerTimeSchema, bytes);
        assert.ok(decoded !== undefined, "the compiled path must take canonical input");
        assert.deepEqual(decoded, fromBinary(PeerTimeSchema, bytes));
      }),
      runs(2000),
    );
  });

  it("raw varints of 1 to 11 bytes with any bits (10th-byte bits beyond 64, unterminated): the same value or the same error", () => {
    const varint = fc
      .integer({ min: 1, max: 11 })
      .chain((len) => fc.array(fc.integer({ min: 0, max: 255 }), { minLength: len, maxLength: len }))
      .map((bytes) => bytes.map((b, i) => (i < bytes.length - 1 ? b | 0x80 : b & 0x7f)));
    let taken = 0;
    fc.assert(
      fc.property(varint, fc.boolean(), (v, truncated) => {
        const body = truncated ? v.slice(0, -1) : v;
        const bytes = new Uint8Array([0x08, ...body]);
        const expected = outcome(() => fromBinary(PeerTimeSchema, bytes));
        const compiled = decodeCompiled(PeerTimeSchema, bytes);
        if (compiled === undefined) {
          // Left to protobuf-es: only what is not a terminated varint of at most 10 bytes.
          assert.ok(truncated || v.length > 10, `fell back on ${fc.stringify(v)}`);
          return;
        }
        taken++;
        assertSameOutcome({ ok: true, value: compiled }, expected, fc.stringify(v));
      }),
      runs(2000),
    );
    assert.ok(taken > 700, `compiled path taken ${taken} times`);
  });
});

describe("peekAlive against protobuf-es", () => {
  const aliveField = GossipMessageSchema.fields.find((f) => f.localName === "aliveMsg") as DescField;
  // Random alive messages, and ones shaped as membership sends them (ASCII endpoint, 32-byte PKI-ID, 9-byte inc_num).
  const plain = fc
    .record({
      nonce: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      tag: fc.integer({ min: 0, max: 5 }),
      endpoint: fc.stringMatching(/^[a-z0-9.:-]{0,40}$/),
      pkiId: fc.uint8Array({ minLength: 1, maxLength: 40 }),
      metadata: fc.uint8Array({ maxLength: 8 }),
      incNum: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      seqNum: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      identity: fc.uint8Array({ maxLength: 300 }),
    })
    .map((r) =>
      create(GossipMessageSchema, {
        nonce: r.nonce,
        tag: r.tag,
        content: {
          case: "aliveMsg",
          value: {
            membership: { endpoint: r.endpoint, metadata: r.metadata, pkiId: r.pkiId },
            timestamp: { incNum: r.incNum, seqNum: r.seqNum },
            identity: r.identity,
          },
        },
      }),
    );
  const alive = fc.oneof(plain, messageWithCaseArb<GossipMessage>(GossipMessageSchema, aliveField));

  /**
   * What peekAlive must say of `bytes`: when it answers, fromBinary and the
   * comm's own decoder (parseGossipMessage, which membership's screen spares)
   * both decode an alive message with that PKI-ID, timestamp and tag.
   */
  function check(bytes: Uint8Array): boolean {
    const peek = peekAlive(bytes);
    if (peek === undefined) return false;
    for (const m of [fromBinary(GossipMessageSchema, bytes), parseGossipMessage(bytes)]) {
      assert.equal(m.content.case, "aliveMsg");
      const a = m.content.value as AliveMessage;
      assert.ok(a.membership !== undefined && a.timestamp !== undefined);
      assert.deepEqual(new Uint8Array(peek.pkiId), new Uint8Array(a.membership.pkiId));
      assert.ok(peek.pkiId.length > 0);
      assert.equal(peek.incNum, a.timestamp.incNum);
      assert.equal(peek.seqNum, a.timestamp.seqNum);
      assert.equal(peek.tag, m.tag);
    }
    return true;
  }

  it("reads the PKI-ID and timestamp of every plain alive message, and of random ones only what fromBinary reads", () => {
    let taken = 0;
    fc.assert(
      fc.property(plain, (m) => {
        assert.ok(check(toBinary(GossipMessageSchema, m)), "a plain alive message must be read");
      }),
      runs(1000),
    );
    fc.assert(
      fc.property(alive, (m) => {
        if (check(toBinary(GossipMessageSchema, m))) taken++;
      }),
      runs(1000),
    );
    assert.ok(taken > 500, `read ${taken} times`);
  });

  it("mutated, concatenated and random input: answers only where fromBinary decodes the same PKI-ID and timestamp", () => {
    let taken = 0;
    fc.assert(
      fc.property(alive, fc.array(mutation, { minLength: 1, maxLength: 3 }), (m, ms) => {
        let b: Uint8Array = toBinary(GossipMessageSchema, m);
        for (const mu of ms) b = mutate(b, mu);
        if (check(b)) taken++;
      }),
      runs(3000),
    );
    fc.assert(
      fc.property(plain, plain, (a, b) => {
        // Two alive messages in a row merge in protobuf: never read as either.
        assert.equal(peekAlive(new Uint8Array([...toBinary(GossipMessageSchema, a), ...toBinary(GossipMessageSchema, b)])), undefined);
      }),
      runs(200),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        check(b);
      }),
      runs(2000),
    );
    assert.ok(taken > 100, `read ${taken} times`);
  });

  it("submessages given twice merge in protobuf: peekAlive leaves them to the decoder, or reads what the merge gives", () => {
    const member = [0x0a, 0x04, 0x1a, 0x02, 0xab, 0xcd]; // membership { pki_id: abcd }
    const t1 = [0x12, 0x02, 0x08, 0x05]; // timestamp { inc_num: 5 }
    const t2 = [0x12, 0x02, 0x10, 0x07]; // timestamp { seq_num: 7 }
    const m2 = [0x0a, 0x02, 0x0a, 0x00]; // membership { endpoint: "" }
    const wrap = (alive: number[]) => new Uint8Array([0x2a, alive.length, ...alive]);
    for (const alive of [
      [...member, ...t1, ...t2],
      [...member, ...m2, ...t1],
      [...member, ...t1, 0x12, 0x04, 0x08, 0x06, 0x08, 0x07], // inc_num twice in one timestamp: the last wins
    ]) {
      check(wrap(alive));
    }
    assert.ok(check(wrap([...member, ...t1])));
  });

  it("the tag: absent is 0, the last one counts, one written in more than one byte is left to the decoder", () => {
    const alive = [0x2a, 0x0a, 0x0a, 0x04, 0x1a, 0x02, 0xab, 0xcd, 0x12, 0x02, 0x08, 0x05];
    assert.equal(peekAlive(new Uint8Array(alive))?.tag, 0);
    assert.equal(peekAlive(new Uint8Array([0x18, 0x01, ...alive]))?.tag, 1);
    assert.equal(peekAlive(new Uint8Array([0x18, 0x02, ...alive, 0x18, 0x01]))?.tag, 1);
    assert.equal(peekAlive(new Uint8Array([0x18, 0x81, 0x00, ...alive])), undefined);
    assert.equal(peekAlive(new Uint8Array([...alive, 0x18])), undefined);
    for (const b of [
      [0x18, 0x01, ...alive],
      [0x18, 0x02, ...alive, 0x18, 0x01],
      [0x18, 0x81, 0x00, ...alive],
    ])
      check(new Uint8Array(b));
  });
});

describe("codec against protobuf-es, over unexpected values", () => {
  const odd: unknown[] = [...oddValues, { case: "nope" }];

  describe("hot-path Envelope decoder with a secret envelope", () => {
    const envelope = fc.record({
      payload: fc.uint8Array({ maxLength: 300 }),
      signature: fc.uint8Array({ maxLength: 80 }),
      secret: fc.option(fc.record({ payload: fc.uint8Array({ maxLength: 40 }), signature: fc.uint8Array({ maxLength: 80 }) })),
    });

    it("canonical envelopes, secret envelope or not, are taken by both hot decoders and decode as fromBinary does", () => {
      let secrets = 0;
      fc.assert(
        fc.property(envelope, fc.nat(5), ({ payload, signature, secret }, before) => {
          const e = create(EnvelopeSchema, { payload, signature, secretEnvelope: secret === null ? undefined : secret });
          const b = toBinary(EnvelopeSchema, e);
          const expected = fromBinary(EnvelopeSchema, b);
          const chunk = Buffer.alloc(before + b.length + 3, 0x1a);
          chunk.set(b, before);
          const hot = decodeHotEnvelope(chunk.subarray(before, before + b.length));
          assert.ok(hot !== undefined, "not taken by decodeHotEnvelope");
          assert.deepStrictEqual(hot, fromBinary(EnvelopeSchema, chunk.subarray(before, before + b.length)));
          const inChunk = decodeHotEnvelopeIn(chunk, before, before + b.length);
          assert.ok(inChunk !== undefined, "not taken by decodeHotEnvelopeIn");
          assert.deepStrictEqual(inChunk, expected);
          if (inChunk.secretEnvelope !== undefined) {
            secrets++;
            for (const field of [inChunk.secretEnvelope.payload, inChunk.secretEnvelope.signature]) {
              assert.equal(Object.getPrototypeOf(field), Uint8Array.prototype, "a plain Uint8Array, not a Buffer");
              if (field.length > 0) assert.equal(field.buffer, chunk.buffer, "a view of the chunk, not a copy");
            }
          }
        }),
        runs(400),
      );
      assert.ok(secrets > 100, `secret envelopes decoded ${secrets} times`);
    });

    it("a repeated, misplaced or extended secret envelope is left to the general path", () => {
      const secret = toBinary(
        SecretEnvelopeSchema,
        create(SecretEnvelopeSchema, { payload: new Uint8Array([1]), signature: new Uint8Array([2]) }),
      );
      const field3 = [0x1a, secret.length, ...secret];
      const cases = [
        [...field3, ...field3], // repeated: protobuf-es merges
        [...field3, 0x0a, 1, 9], // a field after it
        [0x1a, 3, 0x18, 1, 0], // an unknown field inside
        [0x1a, 4, 0x0a, 1, 7], // truncated inside
      ];
      for (const c of cases) {
        const b = new Uint8Array(c);
        assert.equal(decodeHotEnvelope(b), undefined, `taken: ${c}`);
        assert.equal(decodeHotEnvelopeIn(b, 0, b.length), undefined, `taken: ${c}`);
        const expected = outcome(() => fromBinary(EnvelopeSchema, b));
        const actual = outcome(() => decodeEnvelope(b));
        if (expected.ok && actual.ok) assert.deepStrictEqual(actual.value, expected.value);
        else assert.equal(actual.ok, expected.ok, `outcome of ${c}`);
      }
    });
  });

  /** Every (object, key) slot of `msg` and the messages it nests, $unknown included. */
  function slots(msg: Record<string, unknown>, out: [Record<string, unknown>, string][] = []): [Record<string, unknown>, string][] {
    for (const key of [...Object.keys(msg), "$unknown"]) {
      if (key === "$typeName") continue;
      out.push([msg, key]);
      const v = msg[key];
      const nested = Array.isArray(v) ? v : v !== null && typeof v === "object" && "case" in v ? [(v as { value?: unknown }).value] : [v];
      for (const n of nested) if (n !== null && typeof n === "object" && "$typeName" in n) slots(n as Record<string, unknown>, out);
    }
    return out;
  }

  it("a value of the wrong type or range anywhere, or unknown fields: the same bytes or the same error as toBinary", () => {
    const unknown = fc.array(
      fc.record({
        no: fc.integer({ min: 1000, max: 2000 }),
        wireType: fc.constant(0),
        data: fc.constant(new Uint8Array([1])),
      }),
      { minLength: 1, maxLength: 2 },
    );
    fc.assert(
      fc.property(messageArb<GossipMessage>(GossipMessageSchema), fc.nat(), fc.oneof(fc.constantFrom(...odd), unknown), (m, i, value) => {
        const all = slots(m as unknown as Record<string, unknown>);
        const [obj, key] = all[i % all.length] as [Record<string, unknown>, string];
        obj[key] = value;
        assertSameOutcome(
          outcome(() => encodeMessage(GossipMessageSchema, m)),
          outcome(() => toBinary(GossipMessageSchema, m)),
          `${key} = ${fc.stringify(value)}`,
        );
      }),
      runs(300),
    );
  });
});

/** The unsigned Envelope protobuf-es writes around `m`, or the error it throws. */
function expectedUnsigned(m: GossipMessage): Outcome {
  return outcome(() => toBinary(EnvelopeSchema, create(EnvelopeSchema, { payload: toBinary(GossipMessageSchema, m) })));
}

const hotCases = (content?.fields ?? []).filter((f) => ["dataMsg", "empty", "ack"].includes(f.localName));
const maxSafe = BigInt(Number.MAX_SAFE_INTEGER);
/** Random messages of a hot case, made to fit the hot path more often than not (small uint64s, no private data). */
const hotMessages = fc
  .tuple(fc.constantFrom(...hotCases), fc.boolean())
  .chain(([field, fit]) => messageWithCaseArb<GossipMessage>(GossipMessageSchema, field).map((m) => [m, fit] as const))
  .map(([m, fit]) => {
    if (fit) {
      m.nonce %= maxSafe + BigInt(1);
      if (m.tag < 0) m.tag = -m.tag - 1;
      const c = m.content;
      if (c.case === "dataMsg" && c.value.payload) {
        c.value.payload.seqNum %= maxSafe + BigInt(1);
        c.value.payload.privateData = [];
      }
    }
    return m;
  });

describe("hot-path encoder against protobuf-es", () => {
  it("covers data, empty and ack", () => assert.equal(hotCases.length, 3));

  it("writes exactly what protobuf-es writes, and takes the hot path for the shapes it knows", () => {
    let hot = 0;
    fc.assert(
      fc.property(hotMessages, (m) => {
        const expected = expectedUnsigned(m);
        assert.ok(expected.ok);
        const direct = encodeHotEnvelope(m);
        if (direct !== undefined) {
          hot++;
          assert.deepEqual(new Uint8Array(direct), expected.value);
        }
        assert.deepEqual(new Uint8Array(encodeUnsignedEnvelope(m)), expected.value);
      }),
      runs(600),
    );
    assert.ok(hot > 200, `hot path taken ${hot} times`);
  });

  it("edge values: zero and largest safe uint64s, empty and absent parts, multi-byte strings", () => {
    const big = BigInt(Number.MAX_SAFE_INTEGER);
    const samples: GossipMessage[] = [
      create(GossipMessageSchema, {}),
      create(GossipMessageSchema, { nonce: big, tag: 0x7fffffff as GossipMessage_Tag }),
      create(GossipMessageSchema, { content: { case: "dataMsg", value: {} } }),
      create(GossipMessageSchema, { content: { case: "dataMsg", value: { payload: {} } } }),
      create(GossipMessageSchema, {
        nonce: 1n,
        content: { case: "dataMsg", value: { payload: { seqNum: big, data: new Uint8Array(300) } } },
      }),
      create(GossipMessageSchema, { content: { case: "empty", value: {} } }),
      create(GossipMessageSchema, { content: { case: "ack", value: {} } }),
      create(GossipMessageSchema, { content: { case: "ack", value: { error: "\u{1f600} \ud800 ünï" } } }),
      create(GossipMessageSchema, { channel: new Uint8Array(200).fill(3), content: { case: "ack", value: { error: "x".repeat(200) } } }),
    ];
    for (const m of samples) {
      const direct = encodeHotEnvelope(m);
      assert.ok(direct !== undefined, fc.stringify(m));
      assert.deepEqual(new Uint8Array(direct), (expectedUnsigned(m) as { value: unknown }).value);
    }
  });

  it("a data message's payload inherited from a prototype, not its own: the same bytes as protobuf-es", () => {
    const payload = create(GossipMessageSchema, {
      content: { case: "dataMsg", value: { payload: { seqNum: 7n, data: new Uint8Array([1, 2]) } } },
    });
    const m = create(GossipMessageSchema, { nonce: 3n, content: { case: "dataMsg", value: {} } });
    const dm = m.content.value as Record<string, unknown>;
    m.content = { case: "dataMsg", value: Object.assign(Object.create(payload.content.value as object), dm) };
    assert.equal(Object.hasOwn(m.content.value as object, "payload"), false);
    assert.deepEqual(new Uint8Array(encodeUnsignedEnvelope(m)), (expectedUnsigned(m) as { value: unknown }).value);
  });

  it("a value of the wrong type or range anywhere, or unknown fields: the same bytes or the same error as protobuf-es", () => {
    const unknown = [{ no: 1000, wireType: 0, data: new Uint8Array([1]) }];
    fc.assert(
      fc.property(hotMessages, fc.nat(), fc.constantFrom(...oddValues, unknown), (m, i, value) => {
        const all = slotsOf(m as unknown as Record<string, unknown>);
        const [obj, key] = all[i % all.length] as [Record<string, unknown>, string];
        obj[key] = value;
        const actual = outcome(() => new Uint8Array(encodeUnsignedEnvelope(m)));
        assertSameOutcome(actual, expectedUnsigned(m), `${key} = ${fc.stringify(value)}`);
      }),
      runs(600),
    );
  });
});

describe("hot-path decoder against protobuf-es", () => {
  /** When the hot decoder takes `bytes`, protobuf-es accepts them and returns a deep-equal message; returns whether it took them. */
  function checkHot(schema: DescMessage, bytes: Uint8Array): boolean {
    const hot = schema === EnvelopeSchema ? decodeHotEnvelope(bytes) : decodeHotGossipMessage(bytes);
    if (hot === undefined) return false;
    const expected = outcome(() => fromBinary(schema, bytes));
    assert.ok(expected.ok, `the hot path accepted input protobuf-es rejects: ${String((expected as { error: unknown }).error)}`);
    assert.deepStrictEqual(hot, expected.value);
    return true;
  }
  const messages = fc.oneof(hotMessages, messageArb<GossipMessage>(GossipMessageSchema));
  // Inside a larger Buffer, as a transport delivers it (byte fields are then Buffer views, as protobuf-es makes them).
  const inChunk = (b: Uint8Array): Uint8Array => {
    const chunk = Buffer.alloc(b.length + 6, 0x0a);
    chunk.set(b, 3);
    return chunk.subarray(3, 3 + b.length);
  };

  it("canonical encodings of data, empty and ack messages decode exactly as fromBinary, others are left to the general path", () => {
    let hot = 0;
    fc.assert(
      fc.property(messages, (m) => {
        const b = inChunk(toBinary(GossipMessageSchema, m));
        if (checkHot(GossipMessageSchema, b)) hot++;
        else if (["dataMsg", "empty", "ack", undefined].includes(m.content.case)) {
          // Only large uint64s, negative tags or private data may leave the hot shapes to the general path.
          const c = m.content;
          const big = (v: bigint) => v > BigInt(Number.MAX_SAFE_INTEGER);
          const priv = c.case === "dataMsg" && (c.value.payload?.privateData.length ?? 0) > 0;
          const seq = c.case === "dataMsg" && big(c.value.payload?.seqNum ?? BigInt(0));
          assert.ok(big(m.nonce) || m.tag < 0 || priv || seq, `hot shape not taken: ${fc.stringify(m)}`);
        }
        assert.deepStrictEqual(parseGossipMessage(b), fromBinary(GossipMessageSchema, b));
      }),
      runs(800),
    );
    assert.ok(hot > 200, `hot path taken ${hot} times`);
  });

  it("an overlong key is left to the general path (protobuf-es rejects keys beyond 5 bytes)", () => {
    // channel (field 2, length-delimited: key 0x12) with its key padded to 6 bytes, then to 3 (valid there).
    const six = new Uint8Array([0x92, 0x80, 0x80, 0x80, 0x80, 0x00, 0x01, 0x07]);
    assert.throws(() => fromBinary(GossipMessageSchema, six), /illegal tag/);
    assert.equal(decodeHotGossipMessage(six), undefined);
    const three = new Uint8Array([0x92, 0x80, 0x00, 0x01, 0x07]);
    assert.equal(decodeHotGossipMessage(three), undefined);
    assert.deepStrictEqual(parseGossipMessage(three), fromBinary(GossipMessageSchema, three));
  });

  it("mutated and random input: the hot path takes only what protobuf-es decodes to the same message", () => {
    let hot = 0;
    const schemas: DescMessage[] = [GossipMessageSchema, EnvelopeSchema];
    const inputs = fc.oneof(
      fc.tuple(fc.constantFrom(...schemas), messages, fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([schema, m, ms]) => {
        const b = toBinary(GossipMessageSchema, m);
        const bytes =
          schema === EnvelopeSchema ? toBinary(EnvelopeSchema, create(EnvelopeSchema, { payload: b, signature: b.subarray(0, 7) })) : b;
        return [schema, inChunk(ms.reduce(mutate, bytes))] as const;
      }),
      fc.tuple(fc.constantFrom(...schemas), fc.uint8Array({ maxLength: 30 })),
    );
    fc.assert(
      fc.property(inputs, ([schema, b]) => {
        if (checkHot(schema, b)) hot++;
      }),
      runs(1500),
    );
    assert.ok(hot > 100, `hot path taken ${hot} times`);
  });
});

/** Every (object, key) slot of `msg` and the messages it nests, $unknown included. */
function slotsOf(msg: Record<string, unknown>, out: [Record<string, unknown>, string][] = []): [Record<string, unknown>, string][] {
  for (const key of [...Object.keys(msg), "$unknown"]) {
    if (key === "$typeName") continue;
    out.push([msg, key]);
    const v = msg[key];
    const nested = Array.isArray(v) ? v : v !== null && typeof v === "object" && "case" in v ? [(v as { value?: unknown }).value] : [v];
    for (const n of nested) if (n !== null && typeof n === "object" && "$typeName" in n) slotsOf(n as Record<string, unknown>, out);
  }
  return out;
}

describe("Envelope codec against protobuf-es", () => {
  const envelopes = messageArb<Envelope>(EnvelopeSchema);
  const withUnknown = fc.tuple(envelopes, fc.boolean()).map(([e, u]) => {
    if (u) e.$unknown = [{ no: 9, wireType: 2, data: new Uint8Array([2, 7, 7]) }];
    return e;
  });

  it("encodeEnvelope is byte-identical to toBinary (unknown fields written back)", () => {
    fc.assert(
      fc.property(withUnknown, (e) => {
        assert.deepEqual(encodeEnvelope(e), toBinary(EnvelopeSchema, e));
      }),
      runs(200),
    );
  });

  it("decodeEnvelope returns what fromBinary returns, and throws MalformedMessage exactly where it throws", () => {
    const inputs = fc.oneof(
      fc.tuple(withUnknown, fc.array(mutation, { maxLength: 2 })).map(([e, ms]) => ms.reduce(mutate, toBinary(EnvelopeSchema, e))),
      fc.uint8Array({ maxLength: 24 }),
    );
    fc.assert(
      fc.property(inputs, (b) => {
        const expected = outcome(() => fromBinary(EnvelopeSchema, b));
        const actual = outcome(() => decodeEnvelope(b));
        if (expected.ok) {
          assert.ok(actual.ok, `decodeEnvelope threw ${String((actual as { error: unknown }).error)}`);
          assert.deepStrictEqual(actual.value, expected.value);
        } else {
          assert.ok(!actual.ok, "decodeEnvelope accepted what protobuf-es rejects");
          assert.ok(actual.error instanceof GossipError && actual.error.code === ErrorCode.MalformedMessage);
        }
      }),
      runs(400),
    );
  });

  it("decodeEnvelopeIn of a frame inside a Buffer chunk returns what fromBinary returns, with plain views of the chunk", () => {
    const inputs = fc.oneof(
      fc.tuple(withUnknown, fc.array(mutation, { maxLength: 2 })).map(([e, ms]) => ms.reduce(mutate, toBinary(EnvelopeSchema, e))),
      fc.uint8Array({ maxLength: 24 }),
    );
    fc.assert(
      fc.property(inputs, fc.nat(7), fc.nat(7), (b, before, after) => {
        // As the transport hands frames on: a region of a received Buffer, bytes around it.
        const chunk = Buffer.alloc(before + b.length + after, 0x0a);
        chunk.set(b, before);
        const expected = outcome(() => fromBinary(EnvelopeSchema, b));
        const actual = outcome(() => decodeEnvelopeIn(chunk, before, before + b.length));
        if (!expected.ok) {
          assert.ok(!actual.ok, "decodeEnvelopeIn accepted what protobuf-es rejects");
          assert.ok(actual.error instanceof GossipError && actual.error.code === ErrorCode.MalformedMessage);
          return;
        }
        assert.ok(actual.ok, `decodeEnvelopeIn threw ${String((actual as { error: unknown }).error)}`);
        const env = actual.value as Envelope;
        assert.deepStrictEqual(env, expected.value);
        for (const field of [env.payload, env.signature]) {
          assert.equal(Object.getPrototypeOf(field), Uint8Array.prototype, "a plain Uint8Array, not a Buffer");
          if (field.length > 0) assert.equal(field.buffer, chunk.buffer, "a view of the chunk, not a copy");
        }
        const frame = receivedFrame(env);
        if (frame !== undefined) assert.deepEqual(new Uint8Array(frame), toBinary(EnvelopeSchema, env));
      }),
      runs(400),
    );
  });

  it("receivedFrame is the received bytes themselves, and only when they are exactly toBinary of the envelope", () => {
    let reused = 0;
    fc.assert(
      fc.property(withUnknown, fc.array(mutation, { maxLength: 2 }), fc.nat(3), (e, ms, edit) => {
        const original = toBinary(EnvelopeSchema, e);
        // A frame inside a larger buffer, as a transport delivers it.
        const mutated = ms.reduce(mutate, original);
        const chunk = new Uint8Array(mutated.length + 8).fill(0x0a);
        chunk.set(mutated, 4);
        const received = chunk.subarray(4, 4 + mutated.length);
        const decoded = outcome(() => decodeEnvelope(received));
        if (!decoded.ok) return;
        const env = decoded.value as Envelope;
        if (edit === 1) env.signature = Uint8Array.from(env.signature);
        if (edit === 2 && env.secretEnvelope)
          env.secretEnvelope = { ...env.secretEnvelope, payload: Uint8Array.from(env.secretEnvelope.payload) };
        const frame = receivedFrame(env);
        if (frame === undefined) return;
        reused++;
        assert.equal(frame.buffer, chunk.buffer, "a view of the received bytes, not a copy");
        assert.deepEqual(new Uint8Array(frame), toBinary(EnvelopeSchema, env));
        if (edit === 0 && ms.length === 0) assert.deepEqual(new Uint8Array(frame), original);
      }),
      runs(400),
    );
    assert.ok(reused > 50, `received bytes reused ${reused} times`);
  });

  it("an unchanged received envelope is its received bytes, unknown fields included; a changed one is not", () => {
    const e = create(EnvelopeSchema, { payload: new Uint8Array([8, 1]), signature: new Uint8Array([1, 2, 3]) });
    e.secretEnvelope = create(SecretEnvelopeSchema, { payload: new Uint8Array([4]), signature: new Uint8Array([5]) });
    e.secretEnvelope.$unknown = [{ no: 7, wireType: 0, data: new Uint8Array([1]) }];
    e.$unknown = [{ no: 9, wireType: 2, data: new Uint8Array([2, 7, 7]) }];
    const bytes = toBinary(EnvelopeSchema, e);
    const env = decodeEnvelope(bytes);
    assert.equal(receivedFrame(env)?.buffer, bytes.buffer);
    assert.deepEqual(receivedFrame(env), bytes);
    const changes: [string, (x: Envelope) => void][] = [
      ["signature replaced", (x) => (x.signature = new Uint8Array([1, 2, 3]))],
      ["secret envelope dropped", (x) => (x.secretEnvelope = undefined)],
      ["unknown field added", (x) => x.$unknown?.push({ no: 10, wireType: 0, data: new Uint8Array([1]) })],
      [
        "secret signature replaced",
        (x) => {
          if (x.secretEnvelope) x.secretEnvelope.signature = new Uint8Array([5]);
        },
      ],
    ];
    for (const [what, change] of changes) {
      const changed = decodeEnvelope(bytes);
      change(changed);
      assert.equal(receivedFrame(changed), undefined, what);
    }
    // Dropping the trailing unknown fields leaves a prefix of the frame that is exactly the new encoding.
    const trimmed = decodeEnvelope(bytes);
    trimmed.$unknown = undefined;
    assert.deepEqual(receivedFrame(trimmed), toBinary(EnvelopeSchema, trimmed));
    // Built, not received: encoded as before.
    assert.equal(receivedFrame(e), undefined);
  });

  it("encodeUnsignedEnvelope writes the Envelope protobuf-es writes around toBinary of the message", () => {
    fc.assert(
      fc.property(messageArb<GossipMessage>(GossipMessageSchema), (m) => {
        const payload = toBinary(GossipMessageSchema, m);
        const expected = toBinary(EnvelopeSchema, create(EnvelopeSchema, { payload }));
        assert.deepEqual(new Uint8Array(encodeUnsignedEnvelope(m)), expected);
        assert.deepEqual(encodeEnvelope(noopSign(m)), expected);
      }),
      runs(100),
    );
  });
});
