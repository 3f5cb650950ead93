/**
 * Command-line parsing on `node:util` parseArgs, with the checks parseArgs
 * leaves to us turned into usage errors (exit 2) that name the flag and the
 * fix, and parsers for the values the commands take (endpoints, nonces,
 * PKI-IDs, counts).
 */
import { parseArgs } from "node:util";
import { type PkiId, pkiIdFromHex } from "../core/identity.js";
import { usageError } from "./errors.js";

/** One flag of a command. */
export type OptionSpec =
  | { readonly type: "boolean"; readonly short?: string }
  | { readonly type: "string"; readonly short?: string; readonly multiple?: false }
  | { readonly type: "string"; readonly short?: string; readonly multiple: true };

/** The flags of a command, by long name (without `--`). */
export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** Parsed flag values: booleans default to false, repeated strings to []. */
export type OptionValues<O extends OptionSpecs> = {
  -readonly [K in keyof O]: O[K] extends { type: "boolean" } ? boolean : O[K] extends { multiple: true } ? string[] : string | undefined;
};

/** A parsed command line. */
export interface CommandLine<O extends OptionSpecs> {
  readonly values: OptionValues<O>;
  readonly positionals: readonly string[];
  /** True when `--help`/`-h` was given (nothing else was checked). */
  readonly help: boolean;
}

/**
 * Parses `argv` for `command`. Unknown flags, string flags without a value,
 * values on boolean flags and a wrong number of positionals are usage errors.
 * A string flag followed by a word starting with `-` lacks its value, unless
 * the word is a negative number: `--flag -5` means `--flag=-5`.
 * `--help`/`-h` is always accepted and short-circuits every other check.
 */
export function parseCommandLine<O extends OptionSpecs>(
  command: string,
  argv: readonly string[],
  options: O,
  positionals: { readonly min: number; readonly max: number; readonly names: string },
): CommandLine<O> {
  const all: Record<string, OptionSpec> = { ...options, help: { type: "boolean", short: "h" } };
  const { tokens } = parseArgs({
    args: [...argv],
    options: all as Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const helpHint = `run 'gossip-connect ${command} --help' for the usage`;
  if (tokens.some((t) => t.kind === "option" && t.name === "help")) {
    return { values: {} as OptionValues<O>, positionals: [], help: true };
  }
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(options)) {
    values[name] = spec.type === "boolean" ? false : "multiple" in spec && spec.multiple ? [] : undefined;
  }
  const pos: string[] = [];
  for (const t of tokens) {
    if (t.kind === "positional") {
      pos.push(t.value);
      continue;
    }
    if (t.kind !== "option") continue;
    const spec = options[t.name];
    if (spec === undefined) {
      throw usageError(`unknown option ${t.rawName}`, helpHint);
    }
    const flag = `--${t.name}`;
    if (spec.type === "boolean") {
      if (t.value !== undefined)
        throw usageError(`${flag} takes no value (got ${JSON.stringify(t.value)})`, `write ${flag} alone; ${helpHint}`);
      values[t.name] = true;
      continue;
    }
    // parseArgs hands `--out --json` the next flag as a value; that is a
    // missing value, but a negative number (`--alive-interval -5`) is a value
    // like `--alive-interval=-5`, for the flag's own check to judge.
    if (t.value === undefined || (!t.inlineValue && t.value.startsWith("-") && t.value.length > 1 && !negativeNumber.test(t.value))) {
      throw usageError(`${flag} needs a value`, `write ${flag} VALUE (or ${flag}=VALUE); ${helpHint}`);
    }
    if ("multiple" in spec && spec.multiple) (values[t.name] as string[]).push(t.value);
    else if (values[t.name] !== undefined) throw usageError(`${flag} was given twice`, `give ${flag} once`);
    else values[t.name] = t.value;
  }
  if (pos.length < positionals.min) {
    throw usageError(`missing ${positionals.names}`, `write 'gossip-connect ${command} ${positionals.names} ...'; ${helpHint}`);
  }
  if (pos.length > positionals.max) {
    throw usageError(`unexpected argument ${JSON.stringify(pos[positionals.max])}`, helpHint);
  }
  return { values: values as OptionValues<O>, positionals: pos, help: false };
}

/** A word that reads as a negative number (`-5`, `-1.5`, `-.5`, `-1e3`) rather than a flag; no flag looks like one. */
const negativeNumber = /^-(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;

/** Splits repeated, comma-separated values (`--trust-ca a.pem,b.pem --trust-ca c.pem`). */
export function listOf(values: readonly string[]): string[] {
  return values
    .flatMap((v) => v.split(","))
    .map((v) => v.trim())
    .filter((v) => v !== "");
}

/** A `host:port` pair. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
  /** `host:port`, IPv6 hosts in brackets, as the dialer wants it. */
  readonly endpoint: string;
}

/**
 * Parses `HOST:PORT` (`[v6]:PORT` for IPv6). `allowZero` accepts port 0
 * (listen on an ephemeral port).
 */
export function parseHostPort(what: string, value: string, allowZero = false): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535 || (port === 0 && !allowZero)) {
    throw usageError(
      `${what} must be HOST:PORT with a port from ${allowZero ? 0 : 1} to 65535, got ${JSON.stringify(value)}`,
      `write for example 127.0.0.1:7051${allowZero ? " (port 0 picks a free port)" : ""}`,
    );
  }
  const v6 = m[1];
  const host = v6 ?? (m[2] as string);
  return { host, port, endpoint: v6 !== undefined ? `[${v6}]:${port}` : `${host}:${port}` };
}

/** The largest unsigned 64-bit value. */
export const maxUint64 = (1n << 64n) - 1n;

/** Parses an unsigned 64-bit nonce, exactly (decimal or 0x-hex). */
export function parseNonce(value: string): bigint {
  const ok = /^(?:\d+|0[xX][0-9a-fA-F]+)$/.test(value);
  const n = ok ? BigInt(value) : -1n;
  if (n < 0n || n > maxUint64) {
    throw usageError(
      `--nonce must be an unsigned 64-bit integer (0 to ${maxUint64}), got ${JSON.stringify(value)}`,
      "write a decimal number such as --nonce 42",
    );
  }
  return n;
}

/** Parses an integer flag within [min, max]; a usage error suggests `example` (a sensible value; the minimum by default). */
export function parseInteger(flag: string, value: string, min: number, max: number, example = min): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw usageError(
      `${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`,
      `write for example ${flag} ${example}`,
    );
  }
  return n;
}

/** Parses a PKI-ID: 64 hex characters (Fabric's SHA-256 PKI-ID). */
export function parsePkiId(value: string): PkiId {
  if (!/^[0-9a-fA-F]{64}$/.test(value)) {
    throw usageError(
      `--pki-id must be 64 hex characters (a SHA-256 PKI-ID), got ${JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value)} (${value.length} characters)`,
      "copy the PKI-ID from 'gossip-connect handshake HOST:PORT' or from the peer's 'started' event, or omit --pki-id",
    );
  }
  return pkiIdFromHex(value.toLowerCase());
}
