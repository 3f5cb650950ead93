#!/usr/bin/env node
// Summarizes V8 CPU profiles (.cpuprofile, from `node --cpu-prof`) of bench
// workers: self time per function and per source module.
//
// The workers run from an esbuild bundle (bench/.build); esbuild marks where
// each source module starts with a `// src/...` comment, which is how a
// function's bundle line is mapped back to its source file.
//
// Usage: node bench/profile.mjs <file.cpuprofile> [...]   (or imported by run.mjs)
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(benchDir);

const markerCache = new Map();

/** Module markers of a bundle file: sorted [line (0-based), module path]. */
function markersOf(url) {
  if (markerCache.has(url)) return markerCache.get(url);
  let markers = [];
  try {
    const text = readFileSync(fileURLToPath(url), "utf8");
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const m = /^\/\/ ((?:src|bench|node_modules)\/\S+)$/.exec(lines[i]);
      if (m) markers.push([i, m[1]]);
    }
  } catch {
    markers = [];
  }
  markerCache.set(url, markers);
  return markers;
}

/** The source module of a call frame: a bundle line mapped through markers, or the file itself. */
function moduleOf(frame) {
  const url = frame.url ?? "";
  if (url === "") return "(native)";
  if (url.startsWith("node:")) return url;
  if (!url.startsWith("file:")) return url;
  const file = fileURLToPath(url);
  if (file.includes(`${path.sep}.build${path.sep}`)) {
    const markers = markersOf(url);
    let found = "bench/.build";
    for (const [line, mod] of markers) {
      if (line <= frame.lineNumber) found = mod;
      else break;
    }
    return found;
  }
  const rel = path.relative(root, file);
  const nm = rel.lastIndexOf(`node_modules${path.sep}`);
  if (nm >= 0) {
    const parts = rel.slice(nm + "node_modules/".length).split(path.sep);
    const pkg = parts[0]?.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0];
    return `${pkg}/${parts.slice(pkg?.startsWith("@") ? 2 : 1).join("/")}`;
  }
  return rel;
}

function packageOf(mod) {
  if (mod.startsWith("src/")) return "gossip-connect src";
  if (mod.startsWith("bench/")) return "bench harness";
  if (mod.startsWith("node:")) return "node core (JS)";
  if (mod.startsWith("(")) return mod;
  const first = mod.split("/")[0];
  return first.startsWith("@") ? mod.split("/").slice(0, 2).join("/") : first;
}

/**
 * Self time per function, module and package of one profile.
 * Returns { totalMs, idleMs, functions: [{name, module, line, ms, pct}], modules: [...], packages: [...] }
 * with percentages of the busy (non-idle) time.
 */
export function summarizeProfile(file) {
  const prof = JSON.parse(readFileSync(file, "utf8"));
  const byId = new Map();
  for (const n of prof.nodes) byId.set(n.id, n);
  const selfUs = new Map();
  const samples = prof.samples ?? [];
  const deltas = prof.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    // timeDeltas[i] is the time before sample i; attribute the following delta to sample i.
    const dt = deltas[i + 1] ?? 0;
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + Math.max(0, dt));
  }
  const fns = new Map();
  const mods = new Map();
  const pkgs = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const cf = node.callFrame;
    total += us;
    if (cf.functionName === "(idle)") {
      idle += us;
      continue;
    }
    const mod = cf.url === "" ? "(native)" : moduleOf(cf);
    const name = cf.functionName || "(anonymous)";
    const key = `${name}|${mod}|${cf.url === "" ? "" : cf.lineNumber}`;
    const f = fns.get(key) ?? { name, module: mod, line: cf.lineNumber + 1, us: 0 };
    f.us += us;
    fns.set(key, f);
    const m = name.startsWith("(") && cf.url === "" ? name : mod;
    mods.set(m, (mods.get(m) ?? 0) + us);
    const p = name.startsWith("(") && cf.url === "" ? name : packageOf(mod);
    pkgs.set(p, (pkgs.get(p) ?? 0) + us);
  }
  // Inclusive ("total") time of our own functions (src/ and bench/): each
  // sample counts once for every distinct function on its stack.
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keyOf = new Map();
  for (const n of prof.nodes) {
    const cf = n.callFrame;
    if (cf.url === "") continue;
    const mod = moduleOf(cf);
    if (!mod.startsWith("src/") && !mod.startsWith("bench/")) continue;
    keyOf.set(n.id, `${cf.functionName || "(anonymous)"}|${mod}`);
  }
  const incl = new Map();
  for (let i = 0; i < samples.length; i++) {
    const dt = Math.max(0, deltas[i + 1] ?? 0);
    const seen = new Set();
    for (let id = samples[i]; id !== undefined; id = parent.get(id)) {
      const k = keyOf.get(id);
      if (k !== undefined && !seen.has(k)) {
        seen.add(k);
        incl.set(k, (incl.get(k) ?? 0) + dt);
      }
    }
  }
  const busy = Math.max(1, total - idle);
  const pct = (us) => Math.round((us / busy) * 1000) / 10;
  const ms = (us) => Math.round(us / 100) / 10;
  const sorted = (map) => [...map.entries()].sort((a, b) => b[1] - a[1]).map(([name, us]) => ({ name, ms: ms(us), pct: pct(us) }));
  return {
    file,
    totalMs: ms(total),
    idleMs: ms(idle),
    busyMs: ms(total - idle),
    functions: [...fns.values()].sort((a, b) => b.us - a.us).map((f) => ({ name: f.name, module: f.module, ms: ms(f.us), pct: pct(f.us) })),
    modules: sorted(mods),
    inclusive: [...incl.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([k, us]) => {
        const [name, module] = k.split("|");
        return { name, module, ms: ms(us), pct: pct(us) };
      }),
    packages: sorted(pkgs),
  };
}

/** A Markdown rendering of a summary (top `n` rows of each list). */
export function profileMarkdown(title, s, n = 25) {
  const lines = [
    `### ${title}`,
    "",
    `Busy ${s.busyMs} ms of ${s.totalMs} ms sampled (idle ${s.idleMs} ms). Percentages are of busy time.`,
    "",
  ];
  lines.push("| self % | self ms | function | module |", "|---:|---:|---|---|");
  for (const f of s.functions.slice(0, n)) lines.push(`| ${f.pct} | ${f.ms} | \`${f.name}\` | ${f.module} |`);
  lines.push("", "| total % | our function (self + callees) | module |", "|---:|---|---|");
  for (const f of s.inclusive.slice(0, 20)) lines.push(`| ${f.pct} | \`${f.name}\` | ${f.module} |`);
  lines.push("", "| self % | by package |", "|---:|---|");
  for (const p of s.packages.slice(0, 12)) lines.push(`| ${p.pct} | ${p.name} |`);
  lines.push("", "| self % | by module |", "|---:|---|");
  for (const m of s.modules.slice(0, 20)) lines.push(`| ${m.pct} | ${m.name} |`);
  lines.push("");
  return lines.join("\n");
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: node bench/profile.mjs <file.cpuprofile> [...]");
    process.exit(2);
  }
  for (const f of files) console.log(profileMarkdown(path.basename(f), summarizeProfile(f)));
}
