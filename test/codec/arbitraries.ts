// fast-check arbitraries for protobuf-es messages, built from their
// descriptors (reflection), so every message type of a schema gets random
// valid instances without a generator written by hand per type.
import { create, type DescField, type DescMessage, type DescOneof, type Message, ScalarType } from "@bufbuild/protobuf";
import fc from "fast-check";

/** How big generated messages may get. */
export interface Bounds {
  /** Nesting levels of message fields below the top message (recursive types stop there). */
  readonly depth: number;
  /** Most elements of a repeated field. */
  readonly maxList: number;
}

export const defaultBounds: Bounds = { depth: 3, maxList: 3 };

const i64 = BigInt(1) << BigInt(63);
const u64 = BigInt(1) << BigInt(64);

/** Mostly short values, sometimes long ones: over 127 bytes (2-byte lengths) and over the 32-byte ASCII fast path. */
function sized<T>(short: fc.Arbitrary<T>, long: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.oneof({ arbitrary: short, weight: 6 }, { arbitrary: long, weight: 1 });
}

const strings = sized(
  fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: "binary", maxLength: 12 })),
  fc.oneof(fc.string({ minLength: 30, maxLength: 200 }), fc.string({ unit: "binary", minLength: 30, maxLength: 200 })),
);
const bytes = sized(fc.uint8Array({ maxLength: 16 }), fc.uint8Array({ minLength: 100, maxLength: 400 }));

/** Any value of a scalar type, over its whole range (strings in any Unicode, lone surrogates included). */
export function scalarArb(t: ScalarType): fc.Arbitrary<unknown> {
  switch (t) {
    case ScalarType.STRING:
      return strings;
    case ScalarType.BYTES:
      return bytes;
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.integer({ min: -0x80000000, max: 0x7fffffff });
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.integer({ min: 0, max: 0xffffffff });
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.bigInt({ min: -i64, max: i64 - BigInt(1) });
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.bigInt({ min: BigInt(0), max: u64 - BigInt(1) });
    case ScalarType.DOUBLE:
      return fc.double();
    case ScalarType.FLOAT:
      return fc.float();
  }
}

/** Known values of an enum, and any other int32 (open enums keep unknown values). */
function enumArb(values: readonly { number: number }[]): fc.Arbitrary<number> {
  return fc.oneof(
    { arbitrary: fc.constantFrom(...values.map((v) => v.number)), weight: 3 },
    { arbitrary: fc.integer({ min: -0x80000000, max: 0x7fffffff }), weight: 1 },
  );
}

/** The message types `root` reaches through its fields, `root` first. */
export function reachableMessages(root: DescMessage): DescMessage[] {
  const seen = new Set<DescMessage>();
  const walk = (d: DescMessage): void => {
    if (seen.has(d)) return;
    seen.add(d);
    for (const f of d.fields) {
      if (f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message")) walk(f.message);
      if (f.fieldKind === "map" && f.mapKind === "message") walk(f.message);
    }
  };
  walk(root);
  return [...seen];
}

/**
 * Random valid messages of `desc`: every field set or not, scalars over their
 * whole range, enums with unknown values, repeated fields with 0..maxList
 * elements, any oneof case, nested messages down to `bounds.depth` levels.
 */
export function messageArb<T extends Message = Message>(desc: DescMessage, bounds: Bounds = defaultBounds): fc.Arbitrary<T> {
  return new MessageArbs(bounds).of(desc, bounds.depth) as fc.Arbitrary<T>;
}

/** `messageArb` with oneof `oneof` of the top message always set to `field`. */
export function messageWithCaseArb<T extends Message = Message>(
  desc: DescMessage,
  field: DescField,
  bounds: Bounds = defaultBounds,
): fc.Arbitrary<T> {
  const oneof = field.oneof;
  if (oneof === undefined) throw new Error(`${field} is not in a oneof`);
  const arbs = new MessageArbs(bounds);
  return fc.tuple(arbs.of(desc, bounds.depth), arbs.single(field, bounds.depth)).map(([msg, value]) => {
    (msg as unknown as Record<string, unknown>)[oneof.localName] = {
      case: field.localName,
      value,
    };
    return msg as T;
  });
}

class MessageArbs {
  private readonly cache = new Map<string, fc.Arbitrary<Message>>();
  constructor(private readonly bounds: Bounds) {}

  of(desc: DescMessage, depth: number): fc.Arbitrary<Message> {
    const key = `${desc.typeName}@${depth}`;
    let arb = this.cache.get(key);
    if (arb === undefined) {
      const members: Record<string, fc.Arbitrary<unknown>> = {};
      for (const m of desc.members) {
        members[m.localName] = m.kind === "oneof" ? this.oneof(m, depth) : this.field(m, depth);
      }
      arb = fc.record(members).map((init) => create(desc, init as never) as Message);
      this.cache.set(key, arb);
    }
    return arb;
  }

  /** A value of a field, or undefined (unset). */
  private field(f: DescField, depth: number): fc.Arbitrary<unknown> {
    switch (f.fieldKind) {
      case "list": {
        if (f.listKind === "message" && depth === 0) return fc.constant([]);
        const item =
          f.listKind === "message" ? this.of(f.message, depth - 1) : f.listKind === "enum" ? enumArb(f.enum.values) : scalarArb(f.scalar);
        return fc.array(item, { maxLength: this.bounds.maxList });
      }
      case "map":
        throw new Error(`${f}: map fields are not generated yet; extend messageArb`);
      case "message":
        return depth === 0 ? fc.constant(undefined) : fc.option(this.of(f.message, depth - 1), { nil: undefined });
      default:
        return fc.option(this.single(f, depth), { nil: undefined });
    }
  }

  /** A value of a singular field (never undefined, a message only when depth allows). */
  single(f: DescField, depth: number): fc.Arbitrary<unknown> {
    switch (f.fieldKind) {
      case "scalar":
        return scalarArb(f.scalar);
      case "enum":
        return enumArb(f.enum.values);
      case "message":
        return this.of(f.message, Math.max(depth - 1, 0));
      default:
        throw new Error(`${f} is not singular`);
    }
  }

  private oneof(o: DescOneof, depth: number): fc.Arbitrary<unknown> {
    const cases = o.fields
      .filter((f) => f.fieldKind !== "message" || depth > 0)
      .map((f) => this.single(f, depth).map((value) => ({ case: f.localName, value })));
    return fc.oneof({ arbitrary: fc.constant({ case: undefined }), weight: 1 }, ...cases.map((arbitrary) => ({ arbitrary, weight: 1 })));
  }
}
