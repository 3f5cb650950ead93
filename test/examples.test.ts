// Every example in examples/ runs as a script and exits 0 (each checks its own results).
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { runProcess } from "./cli/cli-helpers.js";

const examples = readdirSync("examples")
  .filter((f) => f.endsWith(".ts"))
  .sort();

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

describe("README", () => {
  it("the Comm API example runs as written (package imports mapped to src/, ports to free ones)", async () => {
    const readme = readFileSync("README.md", "utf8");
    const section = readme.slice(readme.indexOf("### The Comm API in brief"));
    const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(code, "README has a ts block under 'The Comm API in brief'");
    const [p1, p2] = [await freePort(), await freePort()];
    const src = pathToFileURL(resolve("src")).href;
    const script = code
      .replace(/from "gossip-connect\/(\w+)"/g, (_m, sub: string) => `from "${src}/${sub}/index.js"`)
      .replaceAll("7051", String(p1))
      .replaceAll("7052", String(p2))
      // Times the closing line, and how long the process lives after it: nothing may keep it alive.
      .replace(
        /^(await Promise\.all\(\[alice\.app\.close\(\), bob\.app\.close\(\)\]\);)/m,
        // Escaped \` and \${ keep the inserted code's own template literals as text.
        `const closing = performance.now();\n$1\nconst closed = performance.now();\nconsole.log(\`close ms \${Math.round(closed - closing)}\`);\nprocess.on("exit", () => console.log(\`exit ms \${Math.round(performance.now() - closed)}\`));`,
      );
    assert.match(script, /const closed = performance\.now\(\)/, "the README example ends with closing both apps");
    const dir = mkdtempSync(join(tmpdir(), "gossip-connect-readme-"));
    try {
      const file = join(dir, "readme-example.mts"); // .mts: ESM with top-level await outside this package
      writeFileSync(file, script);
      const r = await runProcess(process.execPath, ["--import", "tsx", file], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
      assert.match(r.stdout, /bob got dataMsg from 127\.0\.0\.1:\d+\nacks: 1\n/);
      // Closing idle connections takes milliseconds, and the process then exits by itself at once. The bound is
      // under the drain and dial timers a leak would wait for (drainTimeoutMs 2 s, dialTimeoutMs 3 s), with room
      // for a loaded machine: at a load of ~8 on 2 cores the exit took 659 ms, over the 500 ms this bound was. It
      // does not catch a stream closed only by the server's 1 s abort grace (server-wire-stream.ts abortGraceMs);
      // test/server/shutdown.test.ts checks that the connections close without an error.
      const closeMs = Number(/close ms (\d+)/.exec(r.stdout)?.[1]);
      const exitMs = Number(/exit ms (\d+)/.exec(r.stdout)?.[1]);
      assert.ok(closeMs < 1500, `closing both apps took ${closeMs} ms`);
      assert.ok(exitMs < 1500, `the process lived ${exitMs} ms after closing`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => res(port));
    });
  });
}
