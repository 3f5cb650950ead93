/**
 * Plans: what the compiled encoder and decoder know of a message type, built
 * once per type from its protobuf-es descriptor and cached.
 *
 * Only what the Fabric schema uses is compiled: proto3 implicit presence,
 * string/bytes/bool/(u)int32/(u)int64, open enums, nested and repeated
 * messages, oneofs. A type that uses anything else (maps, groups, other
 * scalar types, explicit presence, closed enums, well-known types), or nests
 * such a type, has no plan: protobuf-es handles it.
 */
import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { varintSize, writeVarint } from "./varint.js";

const IMPLICIT = 2;
const EDITION_PROTO3 = 999;

export enum Kind {
  String,
  Bytes,
  Bool,
  Int32,
  Uint32,
  Int64,
  Uint64,
  Enum,
  Message,
}

export interface FieldPlan {
  readonly number: number;
  readonly name: string;
  /** The oneof's local name when the field is in one. */
  readonly oneof: string | undefined;
  readonly kind: Kind;
  readonly repeated: boolean;
  /** Tag byte(s) for the field's natural wire type. */
  readonly tag: Uint8Array;
  /** Wire type written (0 varint, 2 length-delimited). */
  readonly wireType: number;
  /** Zero value of an enum (its first value). */
  readonly enumZero: number;
  /** Plan of a message field's type; linked once every type it reaches is planned (types may recurse). */
  message: Plan | undefined;
}

/** How a decoded message's member starts out, as `fromBinary` creates it. */
export interface ZeroMember {
  readonly name: string;
  /** 0: scalar zero value, 1: list, 2: oneof, 3: bytes (a fresh empty array each, as protobuf-es). */
  readonly kind: 0 | 1 | 2 | 3;
  readonly zero: unknown;
}

export interface Plan {
  readonly typeName: string;
  /** Fields in number order (the order `toBinary` writes). */
  readonly fields: readonly FieldPlan[];
  /** Fields by number, for decoding. */
  readonly byNumber: ReadonlyMap<number, FieldPlan>;
  /** Fields outside oneofs, in number order. */
  readonly regular: readonly FieldPlan[];
  /** Oneof groups: their local name and their fields by case name. */
  readonly oneofs: readonly { readonly name: string; readonly byCase: ReadonlyMap<string, FieldPlan> }[];
  readonly zero: readonly ZeroMember[];
  /** Local names of the singular bytes fields outside oneofs. */
  readonly bytesFields: readonly string[];
}

/** A plan whose message fields are not linked yet, with the types they need. */
interface Draft {
  readonly plan: Plan;
  readonly nested: readonly [FieldPlan, DescMessage][];
}

const plans = new WeakMap<DescMessage, Plan | null>();

/** The plan of `desc`, or null when protobuf-es must handle it (see the module comment). */
export function planOf(desc: DescMessage): Plan | null {
  const cached = plans.get(desc);
  if (cached !== undefined) return cached;
  // Draft every type reachable from `desc` that has no plan yet, then drop
  // the drafts that reach an unsupported type, then link the rest. Doing it
  // for the whole graph at once keeps recursive types consistent.
  const drafts = new Map<DescMessage, Draft | null>();
  const todo = [desc];
  for (let d = todo.pop(); d !== undefined; d = todo.pop()) {
    if (drafts.has(d) || plans.has(d)) continue;
    const draft = draftOf(d);
    drafts.set(d, draft);
    if (draft !== null) for (const [, md] of draft.nested) todo.push(md);
  }
  const supported = (md: DescMessage): boolean => (drafts.has(md) ? drafts.get(md) !== null : plans.get(md) != null);
  for (let changed = true; changed; ) {
    changed = false;
    for (const [d, draft] of drafts) {
      if (draft !== null && !draft.nested.every(([, md]) => supported(md))) {
        drafts.set(d, null);
        changed = true;
      }
    }
  }
  for (const [d, draft] of drafts) {
    if (draft !== null) for (const [f, md] of draft.nested) f.message = drafts.get(md)?.plan ?? (plans.get(md) as Plan);
    plans.set(d, draft === null ? null : draft.plan);
  }
  return plans.get(desc) as Plan | null;
}

function draftOf(desc: DescMessage): Draft | null {
  if (desc.file.edition !== EDITION_PROTO3 || desc.typeName.startsWith("google.protobuf.")) return null;
  const fields: FieldPlan[] = [];
  const nested: [FieldPlan, DescMessage][] = [];
  for (const f of desc.fields) {
    const plan = fieldPlan(f);
    if (plan === undefined) return null;
    fields.push(plan);
    if (f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message")) nested.push([plan, f.message]);
  }
  const zero: ZeroMember[] = [];
  for (const m of desc.members) {
    if (m.kind === "oneof") zero.push({ name: m.localName, kind: 2, zero: undefined });
    else if (m.fieldKind === "list") zero.push({ name: m.localName, kind: 1, zero: undefined });
    else if (m.fieldKind === "scalar" && m.scalar === ScalarType.BYTES) zero.push({ name: m.localName, kind: 3, zero: undefined });
    else if (m.fieldKind === "scalar") zero.push({ name: m.localName, kind: 0, zero: scalarZero(m.scalar) });
    else if (m.fieldKind === "enum") zero.push({ name: m.localName, kind: 0, zero: m.enum.values[0]?.number ?? 0 });
  }
  fields.sort((a, b) => a.number - b.number);
  const oneofs = new Map<string, Map<string, FieldPlan>>();
  for (const f of fields) {
    if (f.oneof === undefined) continue;
    let byCase = oneofs.get(f.oneof);
    if (byCase === undefined) {
      byCase = new Map();
      oneofs.set(f.oneof, byCase);
    }
    byCase.set(f.name, f);
  }
  const plan: Plan = {
    typeName: desc.typeName,
    fields,
    byNumber: new Map(fields.map((f) => [f.number, f])),
    regular: fields.filter((f) => f.oneof === undefined),
    oneofs: [...oneofs].map(([name, byCase]) => ({ name, byCase })),
    zero,
    bytesFields: zero.filter((z) => z.kind === 3).map((z) => z.name),
  };
  return { plan, nested };
}

function scalarKind(t: ScalarType): Kind | undefined {
  switch (t) {
    case ScalarType.STRING:
      return Kind.String;
    case ScalarType.BYTES:
      return Kind.Bytes;
    case ScalarType.BOOL:
      return Kind.Bool;
    case ScalarType.INT32:
      return Kind.Int32;
    case ScalarType.UINT32:
      return Kind.Uint32;
    case ScalarType.INT64:
      return Kind.Int64;
    case ScalarType.UINT64:
      return Kind.Uint64;
    default:
      return undefined;
  }
}

function scalarZero(t: ScalarType): unknown {
  switch (t) {
    case ScalarType.STRING:
      return "";
    case ScalarType.BOOL:
      return false;
    case ScalarType.INT64:
    case ScalarType.UINT64:
      return BigInt(0);
    default:
      return 0;
  }
}

function tagBytes(number: number, wireType: number): Uint8Array {
  const key = number * 8 + wireType;
  const out = new Uint8Array(varintSize(key));
  writeVarint(out, 0, key);
  return out;
}

function fieldPlan(f: DescField): FieldPlan | undefined {
  let kind: Kind | undefined;
  let repeated = false;
  let enumZero = 0;
  switch (f.fieldKind) {
    case "scalar":
      if (f.presence !== IMPLICIT && f.oneof === undefined) return undefined;
      if (f.longAsString) return undefined;
      kind = scalarKind(f.scalar);
      break;
    case "enum":
      if (f.presence !== IMPLICIT && f.oneof === undefined) return undefined;
      if (!f.enum.open) return undefined;
      kind = Kind.Enum;
      enumZero = f.enum.values[0]?.number ?? 0;
      break;
    case "message":
      if (f.delimitedEncoding) return undefined;
      kind = Kind.Message;
      break;
    case "list":
      repeated = true;
      if (f.listKind === "message") {
        if (f.delimitedEncoding) return undefined;
        kind = Kind.Message;
      } else if (f.listKind === "enum") {
        if (!f.enum.open) return undefined;
        kind = Kind.Enum;
      } else {
        if (f.longAsString) return undefined;
        kind = scalarKind(f.scalar);
      }
      if (kind !== undefined && kind !== Kind.Message && kind !== Kind.String && kind !== Kind.Bytes && !f.packed) {
        return undefined;
      }
      break;
    case "map":
      return undefined;
  }
  if (kind === undefined) return undefined;
  const lengthDelimited = kind === Kind.String || kind === Kind.Bytes || kind === Kind.Message || repeated;
  const wireType = lengthDelimited ? 2 : 0;
  return {
    number: f.number,
    name: f.localName,
    oneof: f.oneof?.localName,
    kind,
    repeated,
    tag: tagBytes(f.number, wireType),
    wireType,
    enumZero,
    message: undefined,
  };
}
