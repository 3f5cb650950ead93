/**
 * The compiled decoder: reads a message through its plan's field table and
 * builds what `fromBinary` builds (zero values, `{ case }` oneofs, byte fields
 * as views into the input, repeated message fields merged).
 *
 * Contract: `decodeMessage(schema, bytes)` returns a value deep-equal to
 * `fromBinary(schema, bytes)` when that succeeds, and throws exactly what it
 * throws otherwise. Anything the compiled path does not handle exactly (an
 * unknown field, a wire type that does not match the field, truncated or
 * invalid data, nesting deeper than protobuf-es' recursion limit) makes it
 * hand the whole input to `fromBinary`.
 */
import { type DescMessage, fromBinary, type Message } from "@bufbuild/protobuf";
import { emptyBytes } from "./empty-bytes.js";
import { fallback } from "./fallback.js";
import { Kind, type Plan, planOf } from "./plan.js";
import { Reader } from "./reader.js";

/** protobuf-es' default `recursionLimit`: deeper nesting is an error there. */
const maxDepth = 100;
const zero64 = BigInt(0);

/**
 * A message with every member at its zero value, except bytes fields: they
 * are left undefined until `fillEmptyBytes`, as most are read from the input
 * and allocating an empty array for each costs more than the rest.
 */
function zeroMessage(plan: Plan): Record<string, unknown> {
  const msg: Record<string, unknown> = { $typeName: plan.typeName };
  for (const z of plan.zero) {
    msg[z.name] = z.kind === 0 ? z.zero : z.kind === 1 ? [] : z.kind === 2 ? { case: undefined } : undefined;
  }
  return msg;
}

/** Gives bytes fields the input did not set a fresh empty array each, as `fromBinary` does. */
function fillEmptyBytes(plan: Plan, msg: Record<string, unknown>): void {
  for (const name of plan.bytesFields) if (msg[name] === undefined) msg[name] = emptyBytes();
}

function readScalar(r: Reader, kind: Kind): unknown {
  switch (kind) {
    case Kind.String:
      return r.string();
    case Kind.Bytes:
      return r.bytes();
    case Kind.Bool:
      return r.varint64() !== zero64;
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
  if (depth > maxDepth) throw fallback;
  const end = r.end;
  while (r.pos < end) {
    const key = r.tag();
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
        const len = r.length();
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
  fillEmptyBytes(plan, msg);
}

function readNested(r: Reader, plan: Plan, existing: Record<string, unknown> | undefined, depth: number): Record<string, unknown> {
  const len = r.length();
  const outer = r.end;
  r.end = r.pos + len;
  const msg = existing ?? zeroMessage(plan);
  readMessage(r, plan, msg, depth + 1);
  r.end = outer;
  return msg;
}

/**
 * Decodes through the compiled plan only: the message, or undefined when
 * `fromBinary` must decode `bytes` (see the module comment). For tests and
 * callers that want to know which path was taken.
 */
export function decodeCompiled<T extends Message>(schema: DescMessage, bytes: Uint8Array): T | undefined {
  const plan = planOf(schema);
  if (plan === null) return undefined;
  try {
    const msg = zeroMessage(plan);
    readMessage(new Reader(bytes, bytes.length), plan, msg, 1);
    return msg as T;
  } catch (e) {
    if (e === fallback) return undefined;
    throw e;
  }
}

/** `fromBinary(schema, bytes)`, through the compiled plan when there is one. Throws what protobuf-es throws. */
export function decodeMessage<T extends Message>(schema: DescMessage, bytes: Uint8Array): T {
  return decodeCompiled<T>(schema, bytes) ?? (fromBinary(schema, bytes) as unknown as T);
}
