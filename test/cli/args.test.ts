// Command-line parsing (src/cli/args.ts), in memory.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseCommandLine, parseInteger, parseNonce } from "../../src/cli/args.js";
import { CliError, ExitCode } from "../../src/cli/errors.js";

const options = {
  "alive-interval": { type: "string" },
  nonce: { type: "string" },
  out: { type: "string" },
  json: { type: "boolean" },
} as const;
const none = { min: 0, max: 0, names: "" };

/** Asserts that `fn` throws a usage error (exit 2) whose problem matches `problem`. */
function throwsUsage(fn: () => unknown, problem: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CliError, String(e));
    assert.equal(e.exitCode, ExitCode.Usage);
    assert.match(e.problem, problem);
    return true;
  });
}

describe("parseCommandLine", () => {
  it("takes a negative number after a flag as its value, as the = form does, so the flag's own check reports the range", () => {
    for (const value of ["-5", "-0", "-1.5", "-.5", "-1e3"]) {
      const spaced = parseCommandLine("serve", ["--alive-interval", value], options, none);
      const joined = parseCommandLine("serve", [`--alive-interval=${value}`], options, none);
      assert.equal(spaced.values["alive-interval"], value);
      assert.deepEqual(spaced.values, joined.values);
    }
    const v = parseCommandLine("serve", ["--alive-interval", "-5"], options, none).values["alive-interval"] as string;
    throwsUsage(
      () => parseInteger("--alive-interval", v, 1, 3_600_000),
      /^--alive-interval must be an integer from 1 to 3600000, got "-5"$/,
    );
    const n = parseCommandLine("send", ["--nonce", "-1"], options, none).values.nonce as string;
    throwsUsage(() => parseNonce(n), /^--nonce must be an unsigned 64-bit integer/);
  });

  it("still reports a flag followed by another flag (or by '-x') as missing its value", () => {
    throwsUsage(() => parseCommandLine("init", ["--out", "--json"], options, none), /^--out needs a value$/);
    throwsUsage(() => parseCommandLine("init", ["--out", "-x"], options, none), /^--out needs a value$/);
    throwsUsage(() => parseCommandLine("init", ["--out", "-5x"], options, none), /^--out needs a value$/);
    throwsUsage(() => parseCommandLine("init", ["--out"], options, none), /^--out needs a value$/);
  });
});
