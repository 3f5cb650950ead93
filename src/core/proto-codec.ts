/**
 * A compiled binary codec for the protobuf-es messages on the hot path
 * (GossipMessage and everything it nests).
 *
 * Why: protobuf-es' `toBinary`/`fromBinary` are reflective. Per message they
 * build reflection wrappers, a field-number map (`findNumber`) and, when
 * encoding, one chunk per field that `finish()` concatenates. Profiles of the
 * benchmark (issue 4) put them at about a third of the sender's CPU and half
 * of the receiver's for a 1 KiB GossipMessage. This codec walks a plan built
 * once per message type from the same descriptors instead: one size pass, one
 * write into a single buffer, and on decoding a field table indexed by number.
 *
 * Compatibility: the output is byte-identical to `toBinary`, and decoded
 * messages have the shape `fromBinary` produces (zero values, `{ case }`
 * oneofs, byte fields as views into the input). Only what the Fabric schema
 * uses is compiled: proto3 implicit presence, string/bytes/bool/(u)int32/
 * (u)int64, open enums, nested and repeated messages, oneofs. Everything else
 * (maps, groups, other scalar types, explicit presence, wrappers) and every
 * unusual input (unknown fields, a wire type that does not match, truncated or
 * invalid data, values of an unexpected JS type) falls back to protobuf-es
 * for the whole message, so its results and errors stay authoritative.
 */
import { type DescField, type DescMessage, fromBinary, type Message, ScalarType, toBinary } from "@bufbuild/protobuf";

const IMPLICIT = 2;
const EDITION_PROTO3 = 999;

const enum Kind {
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

interface FieldPlan {
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
  /** Nested plan for message fields (filled in after construction, types may recurse). */
  message: Plan | undefined;
}

interface ZeroMember {
  readonly name: string;
  /** 0: scalar zero value, 1: list, 2: oneof, 3: bytes (a fresh empty array each time, as protobuf-es). */
  readonly kind: 0 | 1 | 2 | 3;
  readonly zero: unknown;
}

interface Plan {
  readonly typeName: string;
  /** Fields in number order (the order `toBinary` writes). */
  readonly fields: readonly FieldPlan[];
  /** Fields by number, for decoding. */
  readonly byNumber: Map<number, FieldPlan>;
  /** Fields outside oneofs, in number order. */
  readonly regular: readonly FieldPlan[];
  /** Oneof groups: their local name and their fields by case name. */
  readonly oneofs: readonly { readonly name: string; readonly byCase: ReadonlyMap<string, FieldPlan> }[];
  readonly zero: readonly ZeroMember[];
}

/** Thrown inside the codec when protobuf-es must handle the message instead. */
class Fallback extends Error {}
const fallback = new Fallback("fallback to protobuf-es");

const plans = new WeakMap<DescMessage, Plan | null>();

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

function tagBytes(number: number, wireType: number): Uint8Array {
  const key = number * 8 + wireType;
  const out = new Uint8Array(varintSize(key));
  writeVarint(out, 0, key);
  return out;
}

/** The plan of `desc`, or null when protobuf-es must handle it (see the module comment). */
function planOf(desc: DescMessage): Plan | null {
  const cached = plans.get(desc);
  if (cached !== undefined) return cached;
  // Provisional entry so that recursive types terminate; replaced below.
  const building: { plan: Plan | null } = { plan: null };
  const fields: FieldPlan[] = [];
  const zero: ZeroMember[] = [];
  let supported = desc.file.edition === EDITION_PROTO3 && !desc.typeName.startsWith("google.protobuf.");
  const nested: [FieldPlan, DescMessage][] = [];
  for (const f of supported ? desc.fields : []) {
    const plan = fieldPlan(f);
    if (plan === undefined) {
      supported = false;
      break;
    }
    fields.push(plan);
    if (plan.kind === Kind.Message) nested.push([plan, (f as { message: DescMessage }).message]);
  }
  if (supported) {
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
      if (byCase === undefined) oneofs.set(f.oneof, (byCase = new Map()));
      byCase.set(f.name, f);
    }
    building.plan = {
      typeName: desc.typeName,
      fields,
      byNumber: new Map(fields.map((f) => [f.number, f])),
      regular: fields.filter((f) => f.oneof === undefined),
      oneofs: [...oneofs].map(([name, byCase]) => ({ name, byCase })),
      zero,
    };
  }
  plans.set(desc, building.plan);
  if (building.plan !== null) {
    for (const [plan, md] of nested) {
      const p = planOf(md);
      if (p === null) {
        plans.set(desc, null);
        return null;
      }
      plan.message = p;
    }
  }
  return building.plan;
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

// --- encoding ----------------------------------------------------------------

function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  let size = 5;
  n = Math.floor(n / 0x800000000);
  while (n > 0) {
    size++;
    n = Math.floor(n / 128);
  }
  return size;
}

function writeVarint(buf: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

const maxSafe = BigInt(Number.MAX_SAFE_INTEGER);
const u64Max = (BigInt(1) << BigInt(64)) - BigInt(1);

/** The unsigned 64-bit value protobuf writes for a scalar, as a number when exact, else a bigint. */
function u64Of(kind: Kind, v: unknown): number | bigint {
  if (kind === Kind.Int32 || kind === Kind.Enum) {
    if (typeof v !== "number" || !Number.isInteger(v) || v > 0x7fffffff || v < -0x80000000) throw fallback;
    return v >= 0 ? v : BigInt.asUintN(64, BigInt(v));
  }
  if (kind === Kind.Uint32) {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw fallback;
    return v;
  }
  if (kind === Kind.Bool) {
    if (typeof v !== "boolean") throw fallback;
    return v ? 1 : 0;
  }
  // 64-bit
  if (typeof v !== "bigint") throw fallback;
  if (kind === Kind.Int64) {
    if (v < -(BigInt(1) << BigInt(63)) || v >= BigInt(1) << BigInt(63)) throw fallback;
    if (v < 0) return BigInt.asUintN(64, v);
  } else if (v < 0 || v > u64Max) {
    throw fallback;
  }
  return v <= maxSafe ? Number(v) : v;
}

function bigVarintSize(v: bigint): number {
  let size = 1;
  while (v >= 0x80) {
    v >>= BigInt(7);
    size++;
  }
  return size;
}

function writeBigVarint(buf: Uint8Array, at: number, v: bigint): number {
  const mask = BigInt(0x7f);
  const seven = BigInt(7);
  while (v >= 0x80) {
    buf[at++] = Number(v & mask) | 0x80;
    v >>= seven;
  }
  buf[at++] = Number(v);
  return at;
}

function numVarintSize(v: number | bigint): number {
  return typeof v === "number" ? varintSize(v) : bigVarintSize(v);
}

function writeNumVarint(buf: Uint8Array, at: number, v: number | bigint): number {
  return typeof v === "number" ? writeVarint(buf, at, v) : writeBigVarint(buf, at, v);
}

const utf8 = new TextEncoder();

/** UTF-8 length of `s` (ASCII fast path). */
function utf8Length(s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, "utf8");
  }
  return n;
}

function writeUtf8(buf: Uint8Array, at: number, s: string, len: number): number {
  if (len === s.length) {
    for (let i = 0; i < len; i++) buf[at + i] = s.charCodeAt(i);
  } else {
    utf8.encodeInto(s, buf.subarray(at, at + len));
  }
  return at + len;
}

/**
 * Encoding state: sizes of nested messages, strings and packed lists, computed
 * by the size pass in the order the write pass consumes them.
 */
interface Sizes {
  /**
   * Per message, in the order of the walk: the number of set fields, then
   * (field, value) pairs, then the entries of its values (string lengths,
   * packed lengths, nested messages' lengths and entries).
   */
  list: unknown[];
  at: number;
}

/** The value of field `f` (not in a oneof) of `msg` when set (proto3 implicit presence), else undefined. */
function valueOf(msg: Record<string, unknown>, f: FieldPlan): unknown {
  const v = msg[f.name];
  if (f.repeated) {
    if (!Array.isArray(v)) throw fallback;
    return v.length > 0 ? v : undefined;
  }
  switch (f.kind) {
    case Kind.Message:
      return v === undefined || !Object.prototype.hasOwnProperty.call(msg, f.name) ? undefined : v;
    case Kind.String:
      if (typeof v !== "string") throw fallback;
      return v.length > 0 ? v : undefined;
    case Kind.Bytes:
      if (!(v instanceof Uint8Array)) throw fallback;
      return v.length > 0 ? v : undefined;
    case Kind.Bool:
      return v === false ? undefined : v;
    case Kind.Int64:
    case Kind.Uint64:
      return v === BigInt(0) ? undefined : v;
    case Kind.Enum:
      return v === f.enumZero ? undefined : v;
    default:
      return v === 0 ? undefined : v;
  }
}

function checkMessage(v: unknown, plan: Plan): Record<string, unknown> {
  if (typeof v !== "object" || v === null || (v as { $typeName?: unknown }).$typeName !== plan.typeName) throw fallback;
  if ((v as { $unknown?: unknown[] }).$unknown?.length) throw fallback;
  return v as Record<string, unknown>;
}

/** Size of one value of a singular-kind field (without tag). */
function valueSize(f: FieldPlan, v: unknown, sizes: Sizes): number {
  switch (f.kind) {
    case Kind.String: {
      if (typeof v !== "string") throw fallback;
      const len = utf8Length(v);
      sizes.list.push(len);
      return varintSize(len) + len;
    }
    case Kind.Bytes:
      if (!(v instanceof Uint8Array)) throw fallback;
      return varintSize(v.length) + v.length;
    case Kind.Message: {
      const i = sizes.list.length;
      sizes.list.push(0);
      const len = messageSize(checkMessage(v, f.message as Plan), f.message as Plan, sizes);
      sizes.list[i] = len;
      return varintSize(len) + len;
    }
    default:
      return numVarintSize(u64Of(f.kind, v));
  }
}

/**
 * Pushes the set fields of `msg` as (field, value) pairs, in number order
 * (the order `toBinary` writes), and returns how many. A oneof is looked up
 * once by its case, not once per member field.
 */
function collect(msg: Record<string, unknown>, plan: Plan, out: unknown[]): number {
  let extras: [FieldPlan, unknown][] | undefined;
  for (const o of plan.oneofs) {
    const c = msg[o.name] as { case?: unknown; value?: unknown } | undefined;
    if (c === null || typeof c !== "object") throw fallback;
    if (c.case === undefined) continue;
    const f = o.byCase.get(c.case as string);
    if (f === undefined || c.value === undefined) throw fallback;
    (extras ??= []).push([f, c.value]);
  }
  if (extras !== undefined && extras.length > 1) extras.sort((a, b) => a[0].number - b[0].number);
  let n = 0;
  let e = 0;
  for (const f of plan.regular) {
    if (extras !== undefined) {
      for (; e < extras.length && (extras[e] as [FieldPlan, unknown])[0].number < f.number; e++, n++) {
        const x = extras[e] as [FieldPlan, unknown];
        out.push(x[0], x[1]);
      }
    }
    const v = valueOf(msg, f);
    if (v === undefined) continue;
    out.push(f, v);
    n++;
  }
  if (extras !== undefined) {
    for (; e < extras.length; e++, n++) {
      const x = extras[e] as [FieldPlan, unknown];
      out.push(x[0], x[1]);
    }
  }
  return n;
}

function messageSize(msg: Record<string, unknown>, plan: Plan, sizes: Sizes): number {
  const list = sizes.list;
  const countAt = list.length;
  list.push(0);
  const n = collect(msg, plan, list);
  list[countAt] = n;
  let size = 0;
  for (let i = countAt + 1, end = countAt + 1 + 2 * n; i < end; i += 2) {
    const f = list[i] as FieldPlan;
    const v = list[i + 1];
    if (!f.repeated) {
      size += f.tag.length + valueSize(f, v, sizes);
      continue;
    }
    const items = v as unknown[];
    if (f.kind === Kind.String || f.kind === Kind.Bytes || f.kind === Kind.Message) {
      for (const item of items) size += f.tag.length + valueSize(f, item, sizes);
    } else {
      let packed = 0;
      for (const item of items) packed += numVarintSize(u64Of(f.kind, item));
      list.push(packed);
      size += f.tag.length + varintSize(packed) + packed;
    }
  }
  return size;
}

function writeValue(buf: Uint8Array, at: number, f: FieldPlan, v: unknown, sizes: Sizes): number {
  switch (f.kind) {
    case Kind.String: {
      const len = sizes.list[sizes.at++] as number;
      at = writeVarint(buf, at, len);
      return writeUtf8(buf, at, v as string, len);
    }
    case Kind.Bytes: {
      const b = v as Uint8Array;
      at = writeVarint(buf, at, b.length);
      buf.set(b, at);
      return at + b.length;
    }
    case Kind.Message: {
      const len = sizes.list[sizes.at++] as number;
      at = writeVarint(buf, at, len);
      return writeMessage(buf, at, sizes);
    }
    default:
      return writeNumVarint(buf, at, u64Of(f.kind, v));
  }
}

function writeTag(buf: Uint8Array, at: number, tag: Uint8Array): number {
  if (tag.length === 1) {
    buf[at] = tag[0] as number;
    return at + 1;
  }
  buf.set(tag, at);
  return at + tag.length;
}

/** Writes the message whose fields `messageSize` collected next in `sizes`. */
function writeMessage(buf: Uint8Array, at: number, sizes: Sizes): number {
  const list = sizes.list;
  const n = list[sizes.at++] as number;
  const start = sizes.at;
  sizes.at += 2 * n;
  for (let i = start, end = start + 2 * n; i < end; i += 2) {
    const f = list[i] as FieldPlan;
    const v = list[i + 1];
    if (!f.repeated) {
      at = writeValue(buf, writeTag(buf, at, f.tag), f, v, sizes);
      continue;
    }
    const items = v as unknown[];
    if (f.kind === Kind.String || f.kind === Kind.Bytes || f.kind === Kind.Message) {
      for (const item of items) at = writeValue(buf, writeTag(buf, at, f.tag), f, item, sizes);
    } else {
      at = writeVarint(buf, writeTag(buf, at, f.tag), list[sizes.at++] as number);
      for (const item of items) at = writeNumVarint(buf, at, u64Of(f.kind, item));
    }
  }
  return at;
}

/**
 * A compiled encoder for messages of `schema`: `size(msg)` then
 * `write(buf, at)` (which must follow the `size` of the same message), so a
 * caller can place the message inside a larger buffer. Returns undefined when
 * the type is not compiled.
 */
export interface MessageEncoder {
  /** Byte size of `msg`; undefined when protobuf-es must encode it. */
  size(msg: object): number | undefined;
  /** Writes the message measured by the last `size` call at `at`; returns the end. */
  write(buf: Uint8Array, at: number): number;
}

export function compileEncoder(schema: DescMessage): MessageEncoder | undefined {
  const plan = planOf(schema);
  if (plan === null) return undefined;
  let pending: Record<string, unknown> | undefined;
  let sizes: Sizes = { list: [], at: 0 };
  return {
    size(msg) {
      sizes = { list: [], at: 0 };
      try {
        const m = checkMessage(msg, plan);
        const n = messageSize(m, plan, sizes);
        pending = m;
        return n;
      } catch (e) {
        pending = undefined;
        if (e === fallback) return undefined;
        throw e;
      }
    },
    write(buf, at) {
      const m = pending;
      if (m === undefined) throw new Error("write without a successful size");
      pending = undefined;
      return writeMessage(buf, at, sizes);
    },
  };
}

/** `toBinary(schema, msg)`, byte for byte, through the compiled plan when there is one. */
export function encodeMessage<T extends Message>(schema: DescMessage, msg: T): Uint8Array {
  const enc = encoders.get(schema) ?? compileAndCache(schema);
  const size = enc === null ? undefined : enc.size(msg);
  if (enc === null || size === undefined) return toBinary(schema, msg);
  const buf = new Uint8Array(size);
  enc.write(buf, 0);
  return buf;
}

const encoders = new WeakMap<DescMessage, MessageEncoder | null>();

function compileAndCache(schema: DescMessage): MessageEncoder | null {
  const enc = compileEncoder(schema) ?? null;
  encoders.set(schema, enc);
  return enc;
}

// --- decoding ----------------------------------------------------------------

const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

class Reader {
  pos = 0;
  constructor(
    readonly buf: Uint8Array,
    public end: number,
  ) {}

  /** A varint as a number; exact below 2^53 (larger ones fall back). Unsigned interpretation. */
  varint(): number {
    const buf = this.buf;
    let b = buf[this.pos++] as number;
    if (b < 0x80 && this.pos <= this.end) return b;
    let result = b & 0x7f;
    let mul = 128;
    for (let i = 1; i < 8; i++) {
      if (this.pos >= this.end) throw fallback;
      b = buf[this.pos++] as number;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    throw fallback; // over 56 bits: rare, let protobuf-es handle it
  }

  /** A varint's low 32 bits (protobuf's int32/uint32/enum reading, up to 10 bytes). */
  varint32(): number {
    const buf = this.buf;
    let lo = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw fallback;
      const b = buf[this.pos++] as number;
      if (i < 5) lo |= (b & 0x7f) << (7 * i);
      if (b < 0x80) return lo;
    }
    throw fallback;
  }

  /** A 64-bit varint as a bigint (unsigned). */
  varint64(): bigint {
    const start = this.pos;
    const buf = this.buf;
    for (let i = 0; i < 7; i++) {
      if (this.pos >= this.end) throw fallback;
      if ((buf[this.pos++] as number) < 0x80) {
        this.pos = start;
        return BigInt(this.varint());
      }
    }
    this.pos = start;
    let v = BigInt(0);
    let shift = BigInt(0);
    const seven = BigInt(7);
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw fallback;
      const b = buf[this.pos++] as number;
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asUintN(64, v);
      shift += seven;
    }
    throw fallback;
  }

  bytes(): Uint8Array {
    const len = this.varint();
    const start = this.pos;
    if (len > this.end - start) throw fallback;
    this.pos = start + len;
    return this.buf.subarray(start, start + len);
  }

  string(): string {
    const len = this.varint();
    const start = this.pos;
    if (len > this.end - start) throw fallback;
    this.pos = start + len;
    const buf = this.buf;
    if (len <= 32) {
      let s = "";
      for (let i = start; i < start + len; i++) {
        const c = buf[i] as number;
        if (c >= 0x80) return decodeUtf8(buf.subarray(start, start + len));
        s += String.fromCharCode(c);
      }
      return s;
    }
    return decodeUtf8(buf.subarray(start, start + len));
  }
}

function decodeUtf8(b: Uint8Array): string {
  try {
    return utf8Decoder.decode(b);
  } catch {
    throw fallback;
  }
}

function zeroMessage(plan: Plan): Record<string, unknown> {
  const msg: Record<string, unknown> = { $typeName: plan.typeName };
  for (const z of plan.zero) {
    msg[z.name] = z.kind === 0 ? z.zero : z.kind === 1 ? [] : z.kind === 2 ? { case: undefined } : new Uint8Array(0);
  }
  return msg;
}

function readScalar(r: Reader, kind: Kind): unknown {
  switch (kind) {
    case Kind.String:
      return r.string();
    case Kind.Bytes:
      return r.bytes();
    case Kind.Bool:
      return r.varint64() !== BigInt(0);
    case Kind.Int32:
    case Kind.Enum:
      return r.varint32() | 0;
    case Kind.Uint32:
      return r.varint32() >>> 0;
    case Kind.Int64:
      return BigInt.asIntN(64, r.varint64());
    default:
      return r.varint64();
  }
}

function readMessage(r: Reader, plan: Plan, msg: Record<string, unknown>, depth: number): void {
  if (depth > 100) throw fallback;
  const end = r.end;
  while (r.pos < end) {
    const key = r.varint();
    const wireType = key & 7;
    const f = plan.byNumber.get(Math.floor(key / 8));
    if (f === undefined) throw fallback; // unknown field: protobuf-es keeps it in $unknown
    if (f.repeated) {
      const list = msg[f.name] as unknown[];
      if (f.kind === Kind.Message) {
        if (wireType !== 2) throw fallback;
        list.push(readNested(r, f.message as Plan, undefined, depth));
      } else if (f.kind === Kind.String || f.kind === Kind.Bytes) {
        if (wireType !== 2) throw fallback;
        list.push(readScalar(r, f.kind));
      } else if (wireType === 2) {
        const len = r.varint();
        if (len > end - r.pos) throw fallback;
        const outer = r.end;
        r.end = r.pos + len;
        while (r.pos < r.end) list.push(readScalar(r, f.kind));
        r.end = outer;
      } else if (wireType === 0) {
        list.push(readScalar(r, f.kind));
      } else {
        throw fallback;
      }
      continue;
    }
    if (wireType !== f.wireType) throw fallback;
    if (f.kind === Kind.Message) {
      let existing: Record<string, unknown> | undefined;
      if (f.oneof !== undefined) {
        const o = msg[f.oneof] as { case: string | undefined; value?: Record<string, unknown> };
        if (o.case === f.name) existing = o.value;
      } else {
        existing = msg[f.name] as Record<string, unknown> | undefined;
      }
      const value = readNested(r, f.message as Plan, existing, depth);
      if (f.oneof !== undefined) msg[f.oneof] = { case: f.name, value };
      else msg[f.name] = value;
      continue;
    }
    const value = readScalar(r, f.kind);
    if (f.oneof !== undefined) msg[f.oneof] = { case: f.name, value };
    else msg[f.name] = value;
  }
  if (r.pos !== end) throw fallback;
}

function readNested(r: Reader, plan: Plan, existing: Record<string, unknown> | undefined, depth: number): Record<string, unknown> {
  const len = r.varint();
  if (len > r.end - r.pos) throw fallback;
  const outer = r.end;
  r.end = r.pos + len;
  const msg = existing ?? zeroMessage(plan);
  readMessage(r, plan, msg, depth + 1);
  r.end = outer;
  return msg;
}

/** `fromBinary(schema, bytes)`, through the compiled plan when there is one. Throws what protobuf-es throws. */
export function decodeMessage<T extends Message>(schema: DescMessage, bytes: Uint8Array): T {
  const plan = planOf(schema);
  if (plan !== null) {
    try {
      const msg = zeroMessage(plan);
      readMessage(new Reader(bytes, bytes.length), plan, msg, 1);
      return msg as T;
    } catch (e) {
      if (e !== fallback) throw e;
    }
  }
  return fromBinary(schema, bytes) as unknown as T;
}
