// `gossip-connect mesh` (npm start) through the real binary: a short run in a
// non-TTY exits 0 with every pair exchanged, its printed curl/buf curl commands
// work as pasted, Ctrl-C stops it within 2 s, temporary files are removed.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { skipWithoutCurl } from "../helpers/exec.js";
import { cli, holdPort, oneErrorLine, type Running, shell, start, tempDir } from "./cli-helpers.js";

let tmp: { dir: string; remove: () => void };
/** This test's TMPDIR: one a test, so that what one test leaves behind fails that test only. */
let testTmp: string;
const running: Running[] = [];

before(() => {
  // The mesh's temporary folders go here (TMPDIR), so that leftovers are visible.
  tmp = tempDir("gossip-cli-mesh-");
});
beforeEach(() => {
  testTmp = mkdtempSync(join(tmp.dir, "t-"));
});

after(async () => {
  await Promise.all(running.map((r) => r.stop("SIGKILL")));
  tmp?.remove();
});

const env = () => ({ TMPDIR: testTmp });
const leftovers = () => readdirSync(testTmp).filter((f) => f.startsWith("gossip-connect-mesh-"));

describe("mesh", () => {
  it("--duration 5 --peers 3 (non-TTY): one line per second, summary, exit 0, pasted curl and buf curl Ping a peer, temp folder removed", async (t) => {
    const mesh = start(["mesh", "--duration", "5", "--peers", "3"], env());
    running.push(mesh);
    const curl = await mesh.waitForLine((l) => l.startsWith("  curl "));
    const bufCurl = await mesh.waitForLine((l) => l.startsWith("  npx buf curl "));
    const grpcurl = await mesh.waitForLine((l) => l.startsWith("  grpcurl "));
    assert.match(grpcurl, /-cacert \S+ -cert \S+ -key \S+ -d '\{\}' 127\.0\.0\.1:\d+ gossip\.Gossip\/Ping$/);
    const folder = /in (\S+gossip-connect-mesh-\w+) \(removed on exit\)/.exec(mesh.lines[0] ?? "")?.[1];
    assert.ok(folder !== undefined && existsSync(folder), mesh.lines[0]);

    // The commands exactly as printed (buf through the project's devDependency, as `npx buf` resolves it).
    const [c, b] = await Promise.all([
      skipWithoutCurl ? undefined : shell(curl.trim()),
      shell(bufCurl.trim().replace(/^npx buf /, `${join(process.cwd(), "node_modules", ".bin", "buf")} `)),
    ]);
    if (c) {
      assert.equal(c.code, 0, c.stderr);
      assert.equal(c.stdout, "{}");
    } else t.diagnostic(`curl command not run: ${skipWithoutCurl}`);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.stdout.trim(), "{}");

    const { code } = await Promise.race([
      mesh.exited,
      new Promise<never>((_, r) => setTimeout(() => r(new Error("mesh did not exit")), 15_000)),
    ]);
    assert.equal(code, 0, `stdout:\n${mesh.lines.join("\n")}\nstderr:\n${mesh.stderr}`);
    const perSecond = mesh.lines.filter((l) => /^\[\s*\d+s\] peer1 [0-9a-f]{8} conns=/.test(l));
    assert.ok(perSecond.length >= 3, mesh.lines.join("\n"));
    assert.ok(!mesh.lines.some((l) => l.includes("\x1b[")), "no ANSI escapes in a non-TTY");
    assert.ok(
      mesh.lines.some((l) => /mesh summary: 3 peers .* 6\/6 directed pairs exchanged messages/.test(l)),
      mesh.lines.join("\n"),
    );
    assert.ok(mesh.lines.includes("leave/return demo: not run (it needs --duration 11 or more)"), mesh.lines.join("\n"));
    assert.equal(existsSync(folder), false, "temporary folder removed");
    assert.deepEqual(leftovers(), []);
  });

  it("--duration 11 --peers 3: the last peer leaves and comes back; every other view presumes it dead, then revives it; exit 0", async () => {
    const mesh = start(["mesh", "--duration", "11", "--peers", "3"], env());
    running.push(mesh);
    const { code } = await Promise.race([
      mesh.exited,
      new Promise<never>((_, r) => setTimeout(() => r(new Error("mesh did not exit")), 40_000)),
    ]);
    const out = mesh.lines.join("\n");
    assert.equal(code, 0, `stdout:\n${out}\nstderr:\n${mesh.stderr}`);
    assert.match(out, /shortened timings for this demo: alive messages every 500 ms, a peer is presumed dead after 2\.5 s/);
    assert.match(out, /\] peer3 leaves/);
    for (const observer of ["peer1", "peer2"]) {
      assert.match(out, new RegExp(`\\] ${observer} sees peer3 presumed dead`));
      assert.match(out, new RegExp(`\\] ${observer} sees peer3 alive again \\(revived\\)`));
    }
    assert.match(out, /\] peer3 comes back on 127\.0\.0\.1:\d+/);
    assert.match(out, /^leave\/return: peer3 left at [\d.]+ s and came back at [\d.]+ s$/m);
    assert.match(out, /^ {2}presumed dead by peer1 at [\d.]+ s, peer2 at [\d.]+ s$/m);
    assert.match(out, /^ {2}alive again \(revived\) by peer1 at [\d.]+ s, peer2 at [\d.]+ s$/m);
    assert.match(out, /^membership views at the end \(alive\/presumed dead\): peer1 2\/0, peer2 2\/0, peer3 2\/0$/m);
    assert.ok(
      mesh.lines.some((l) => /^\[\s*\d+s\] peer1 [0-9a-f]{8} conns=.* view=\d\/\d/.test(l)),
      out,
    );
    assert.ok(
      mesh.lines.some((l) => /peer3 [0-9a-f]{8} conns=.* away$/.test(l)),
      "the view shows the peer away",
    );
  });

  it("SIGINT stops every peer within 2 s, removes the temporary folder, exits 0", async () => {
    const mesh = start(["mesh", "--peers", "3"], env());
    running.push(mesh);
    await mesh.waitForLine((l) => /^\[\s*1s\]/.test(l));
    const { code, tookMs } = await mesh.stop("SIGINT");
    assert.equal(code, 0, mesh.stderr);
    assert.ok(tookMs < 2000, `took ${tookMs} ms`);
    assert.ok(
      mesh.lines.some((l) => l.startsWith("mesh summary: 3 peers") && l.includes("(SIGINT)")),
      mesh.lines.join("\n"),
    );
    assert.deepEqual(leftovers(), []);
  });

  it("SIGHUP (the terminal closing) stops it as SIGINT does: summary, temporary folder removed, exit 0", async () => {
    const mesh = start(["mesh", "--peers", "2"], env());
    running.push(mesh);
    await mesh.waitForLine((l) => /^\[\s*1s\]/.test(l));
    const { code, signal } = await mesh.stop("SIGHUP");
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, mesh.stderr);
    assert.ok(
      mesh.lines.some((l) => l.startsWith("mesh summary: 2 peers") && l.includes("(SIGHUP)")),
      mesh.lines.join("\n"),
    );
    assert.deepEqual(leftovers(), []);
  });

  it("a signal during setup (certificates, servers) stops it too: temporary folder removed, exit 0", async () => {
    const mesh = start(["mesh", "--peers", "16"], env());
    running.push(mesh);
    // The folder is made first, then the CA, 17 identities and 16 servers: signal as soon as it appears.
    for (let i = 0; i < 3000 && leftovers().length === 0 && mesh.proc.exitCode === null; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(leftovers().length, 1, `no temporary folder appeared; stderr: ${mesh.stderr}`);
    const { code, signal, tookMs } = await mesh.stop("SIGTERM");
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, mesh.stderr);
    assert.ok(tookMs < 5000, `took ${tookMs} ms`);
    assert.deepEqual(leftovers(), []);
    assert.ok(
      mesh.lines.some((l) => /^mesh stopped by SIGTERM while starting; temporary folder .* removed$/.test(l)),
      mesh.lines.join("\n"),
    );
  });

  it("bad input: --peers 1 exits 2; a --base-port in use exits 1 and leaves no temporary folder", async () => {
    const usage = await cli(["mesh", "--peers", "1"], { env: env() });
    assert.equal(usage.code, 2);
    assert.match(oneErrorLine(usage.stderr), /--peers must be an integer from 2 to 16/);
    // The example in the fix is a sensible value, not the range's minimum (port 1 needs root).
    const badPort = await cli(["mesh", "--base-port", "70000"], { env: env() });
    assert.equal(badPort.code, 2);
    assert.match(oneErrorLine(badPort.stderr), /fix: write for example --base-port 7051$/);

    const holder = await holdPort();
    try {
      const busy = await cli(["mesh", "--peers", "2", "--base-port", String(holder.port), "--duration", "1"], { env: env() });
      assert.equal(busy.code, 1);
      assert.match(oneErrorLine(busy.stderr), new RegExp(`port ${holder.port} on 127\\.0\\.0\\.1 is already in use; fix: .*--base-port`));
      assert.deepEqual(leftovers(), []);
    } finally {
      await holder.close();
    }
  });
});
