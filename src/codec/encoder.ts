/**
 * The compiled encoder: one size pass that also records what the write pass
 * needs (set fields, string, packed and nested lengths), then one write into
 * a single buffer. Output is byte-identical to protobuf-es' `toBinary`.
 *
 * Re-entrant: everything one encoding needs lives in the `Measured` its size
 * pass returns, so encodings may nest or interleave freely.
 *
 * Any value of an unexpected JS type or range, and any message with unknown
 * fields, makes the whole message fall back to `toBinary`, so its output and
 * errors stay authoritative.
 */
import { type DescMessage, type Message, toBinary } from "@bufbuild/protobuf";
import { fallback } from "./fallback.js";
import { type FieldPlan, Kind, type Plan, planOf } from "./plan.js";
import { utf8Length, writeUtf8 } from "./utf8.js";
import { anyVarintSize, varintSize, writeAnyVarint, writeVarint } from "./varint.js";

/** A measured message, ready to be written. */
export interface Measured {
  /** Its encoded size in bytes. */
  readonly size: number;
  /**
   * Writes it at `at` (`size` bytes must be free there); returns the offset
   * after it. May be called more than once. The message must not change
   * between measuring and writing.
   */
  write(buf: Uint8Array, at: number): number;
}

/** A compiled encoder for one message type; see {@link compileEncoder}. */
export interface MessageEncoder {
  /** Measures `msg`; undefined when protobuf-es must encode it (see the module comment). */
  measure(msg: object): Measured | undefined;
  /**
   * {@link MessageEncoder.measure} for a caller that writes at once: the
   * result is only valid until the next `measureOnce` of any encoder (one
   * scratch is reused, so a hot path allocates nothing for measuring).
   */
  measureOnce(msg: object): Measured | undefined;
}

/**
 * What the size pass leaves for the write pass: per message, in the order of
 * the walk, the number of set fields, then (field, value) pairs, then the
 * entries of its values (string lengths, packed lengths, nested messages'
 * lengths and entries). `at` is the write pass's cursor.
 */
class Sizes implements Measured {
  readonly list: unknown[] = [];
  at = 0;
  size = 0;

  reset(): this {
    this.list.length = 0;
    this.at = 0;
    this.size = 0;
    return this;
  }

  write(buf: Uint8Array, at: number): number {
    this.at = 0;
    return writeMessage(buf, at, this);
  }
}

const maxSafe = BigInt(Number.MAX_SAFE_INTEGER);
const i64Min = -(BigInt(1) << BigInt(63));
const i64Limit = BigInt(1) << BigInt(63);
const u64Max = (BigInt(1) << BigInt(64)) - BigInt(1);
const zero64 = BigInt(0);

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
  if (typeof v !== "bigint") throw fallback;
  if (kind === Kind.Int64) {
    if (v < i64Min || v >= i64Limit) throw fallback;
    if (v < 0) return BigInt.asUintN(64, v);
  } else if (v < 0 || v > u64Max) {
    throw fallback;
  }
  return v <= maxSafe ? Number(v) : v;
}

/** The value of field `f` (not in a oneof) of `msg` when set (proto3 implicit presence), else undefined. */
function presentValue(msg: Record<string, unknown>, f: FieldPlan): unknown {
  const v = msg[f.name];
  // An absent scalar is not its zero value to protobuf-es (it writes or rejects it): let it decide.
  if (v === undefined && f.kind !== Kind.Message) throw fallback;
  if (f.repeated) {
    if (!Array.isArray(v)) throw fallback;
    return v.length > 0 ? v : undefined;
  }
  switch (f.kind) {
    case Kind.Message:
      return v === undefined || !Object.hasOwn(msg, f.name) ? undefined : v;
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
      return v === zero64 ? undefined : v;
    case Kind.Enum:
      return v === f.enumZero ? undefined : v;
    default:
      return v === 0 ? undefined : v;
  }
}

/** Whether `toBinary` may write unknown fields of `msg` (anything but none: `$unknown` absent or empty). */
export function mayHaveUnknownFields(msg: object): boolean {
  const u = (msg as { $unknown?: unknown }).$unknown;
  return u != null && !(Array.isArray(u) && u.length === 0);
}

function checkMessage(v: unknown, plan: Plan): Record<string, unknown> {
  if (typeof v !== "object" || v === null || (v as { $typeName?: unknown }).$typeName !== plan.typeName) throw fallback;
  if (mayHaveUnknownFields(v)) throw fallback;
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
      return anyVarintSize(u64Of(f.kind, v));
  }
}

/**
 * Pushes the set fields of `msg` as (field, value) pairs, in number order
 * (the order `toBinary` writes), and returns how many. A oneof is looked up
 * once by its case, not once per member field.
 */
function collect(msg: Record<string, unknown>, plan: Plan, out: unknown[]): number {
  // The usual message sets at most one oneof: it is placed without allocating.
  let oneF: FieldPlan | undefined;
  let oneV: unknown;
  let extras: [FieldPlan, unknown][] | undefined;
  for (const o of plan.oneofs) {
    const c = msg[o.name] as { case?: unknown; value?: unknown } | undefined;
    if (c === null || typeof c !== "object") throw fallback;
    if (c.case === undefined) continue;
    const f = o.byCase.get(c.case as string);
    if (f === undefined || c.value === undefined) throw fallback;
    if (oneF === undefined && extras === undefined) {
      oneF = f;
      oneV = c.value;
      continue;
    }
    if (extras === undefined) {
      extras = [[oneF as FieldPlan, oneV]];
      oneF = undefined;
    }
    extras.push([f, c.value]);
  }
  if (oneF !== undefined) return collectWithOne(msg, plan, out, oneF, oneV);
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
    const v = presentValue(msg, f);
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

/** {@link collect} for a message with exactly one oneof member set (`f` = `v`). */
function collectWithOne(msg: Record<string, unknown>, plan: Plan, out: unknown[], f1: FieldPlan, v1: unknown): number {
  let n = 0;
  let pending = true;
  for (const f of plan.regular) {
    if (pending && f1.number < f.number) {
      out.push(f1, v1);
      n++;
      pending = false;
    }
    const v = presentValue(msg, f);
    if (v === undefined) continue;
    out.push(f, v);
    n++;
  }
  if (pending) {
    out.push(f1, v1);
    n++;
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
      for (const item of items) packed += anyVarintSize(u64Of(f.kind, item));
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
      return writeAnyVarint(buf, at, u64Of(f.kind, v));
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
      for (const item of items) at = writeAnyVarint(buf, at, u64Of(f.kind, item));
    }
  }
  return at;
}

/**
 * A compiled encoder for messages of `schema`, so that a caller can place a
 * message inside a larger buffer; undefined when the type has no plan
 * (protobuf-es must encode it). Holds no state between calls.
 */
export function compileEncoder(schema: DescMessage): MessageEncoder | undefined {
  const plan = planOf(schema);
  if (plan === null) return undefined;
  const measureInto = (msg: object, sizes: Sizes): Measured | undefined => {
    try {
      sizes.size = messageSize(checkMessage(msg, plan), plan, sizes);
      return sizes;
    } catch (e) {
      if (e === fallback) return undefined;
      throw e;
    }
  };
  return {
    measure: (msg) => measureInto(msg, new Sizes()),
    measureOnce: (msg) => measureInto(msg, scratch.reset()),
  };
}

/** The scratch of `measureOnce` (measuring runs no caller code, so nothing can interleave). */
const scratch = new Sizes();

const encoders = new WeakMap<DescMessage, MessageEncoder | null>();

/** `toBinary(schema, msg)`, byte for byte, through the compiled plan when there is one. */
export function encodeMessage<T extends Message>(schema: DescMessage, msg: T): Uint8Array {
  let enc = encoders.get(schema);
  if (enc === undefined) {
    enc = compileEncoder(schema) ?? null;
    encoders.set(schema, enc);
  }
  const measured = enc === null ? undefined : enc.measureOnce(msg);
  if (measured === undefined) return toBinary(schema, msg);
  const buf = new Uint8Array(measured.size);
  measured.write(buf, 0);
  return buf;
}
