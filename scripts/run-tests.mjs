#!/usr/bin/env node
// Runs test files with Node's test runner (and tsx for TypeScript).
// Usage: node scripts/run-tests.mjs [dir-or-file ...]   (default: test, without test/chaos and test/soak)
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const args = process.argv.slice(2);
const roots = args.length > 0 ? args : ["test"];
const skipDirs = args.length > 0 ? new Set() : new Set([join("test", "chaos"), join("test", "soak")]);
const files = [];
const walk = (p) => {
  if (statSync(p).isDirectory()) {
    if (skipDirs.has(p)) return;
    for (const f of readdirSync(p).sort()) walk(join(p, f));
  } else if (p.endsWith(".test.ts")) {
    files.push(p);
  }
};
for (const r of roots) walk(r);
if (files.length === 0) {
  console.error(`no test files under ${roots.join(", ")}`);
  process.exit(1);
}
// The soak (test/soak) runs for SOAK_SECONDS (default 300): its files get that plus 5 minutes.
const soak = files.some((f) => f.startsWith(`${join("test", "soak")}/`));
const timeoutMs = soak ? ((Number(process.env.SOAK_SECONDS) || 300) + 300) * 1000 : 120_000;
const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=2", `--test-timeout=${timeoutMs}`, ...files], {
  stdio: "inherit",
});
process.exit(r.status ?? 1);
