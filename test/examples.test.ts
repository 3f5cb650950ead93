// Every example in examples/ runs as a script and exits 0 (each checks its own results).
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { describe, it } from "node:test";
import { runProcess } from "./cli/cli-helpers.js";

const examples = readdirSync("examples").filter((f) => f.endsWith(".ts")).sort();

describe("examples", () => {
  it("covers the three documented examples", () => {
    assert.deepEqual(examples, ["fastify-app.ts", "foreign-peer.ts", "subscribe-and-answer.ts"]);
  });

  for (const file of examples) {
    it(`${file} exits 0`, async () => {
      const r = await runProcess(process.execPath, ["--import", "tsx", `examples/${file}`], { timeoutMs: 30_000 });
      assert.equal(r.timedOut, false, `${file} timed out`);
      assert.equal(r.code, 0, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^${file.replace(/\.ts$/, "")}: `));
    });
  }
});
