/**
 * Output of the commands: results and events on stdout, as one JSON object
 * per line with `--json` or as `key=value` lines for people; problems on
 * stderr, one line each. 64-bit values (nonces) are printed as decimal
 * strings, never as JS numbers.
 */

/** A JSON-safe record (bigints become decimal strings when printed). */
export type Fields = Readonly<Record<string, unknown>>;

/** Serializes `value` as one JSON line; bigints become decimal strings. */
export function jsonLine(value: Fields): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
}

function plain(v: unknown): string {
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "string") return /[\s"=]/.test(v) || v === "" ? JSON.stringify(v) : v;
  if (v === null || v === undefined) return "-";
  if (typeof v === "object") return jsonLine(v as Fields);
  return String(v);
}

/** `key=value key=value`, quoting values with spaces. */
export function keyValues(fields: Fields): string {
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${plain(v)}`)
    .join(" ");
}

/** A result for people: its name, then one aligned `key  value` line per field. */
export function block(name: string, fields: Fields): string {
  const entries = Object.entries(fields).filter(([, v]) => v !== undefined);
  const width = Math.max(0, ...entries.map(([k]) => k.length));
  const value = (v: unknown): string => {
    if (v !== null && typeof v === "object")
      return Object.values(v as Fields)
        .map((x) => String(x))
        .join(" ");
    return typeof v === "bigint" ? v.toString() : String(v);
  };
  return [name, ...entries.map(([k, v]) => `  ${k.padEnd(width)}  ${value(v)}`)].join("\n");
}

/** Where a command writes. */
export interface Output {
  /** True with --json. */
  readonly json: boolean;
  /** Writes one line to stdout, as is. */
  line(text: string): void;
  /** Writes one line to stderr, as is. */
  errorLine(text: string): void;
  /**
   * Writes an event or result: `{"event": name, ...fields}` with --json,
   * otherwise `name key=value ...`.
   */
  record(name: string, fields: Fields, key?: "event" | "result"): void;
}

/** Output to the process' stdout and stderr. */
export function processOutput(json: boolean): Output {
  return {
    json,
    line: (text) => {
      process.stdout.write(`${text}\n`);
    },
    errorLine: (text) => {
      process.stderr.write(`${text}\n`);
    },
    record(name, fields, key = "event") {
      if (json) process.stdout.write(`${jsonLine({ [key]: name, ...fields })}\n`);
      else if (key === "result") process.stdout.write(`${block(name, fields)}\n`);
      else process.stdout.write(`${name}${Object.keys(fields).length > 0 ? ` ${keyValues(fields)}` : ""}\n`);
    },
  };
}
