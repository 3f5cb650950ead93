#!/usr/bin/env node
// Schema checks run by `npm test` and CI:
//  1. buf lint (buf.yaml documents the rules Fabric's naming forces off);
//  2. buf breaking against Hyperledger's published gossip schema (npm package
//     fabric-protos): our proof of wire compatibility;
//  3. src/gen is what `npm run generate` produces from proto/ (no stale code).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const buf = join("node_modules", ".bin", "buf");
const run = (args) => execFileSync(buf, args, { stdio: ["ignore", "inherit", "inherit"] });
const tmp = mkdtempSync(join(tmpdir(), "gossip-connect-proto-"));
let failed = false;
try {
  process.stdout.write("buf lint ... ");
  run(["lint"]);
  console.log("ok");

  process.stdout.write("buf breaking against fabric-protos ... ");
  const fabric = join("node_modules", "fabric-protos", "protos");
  const image = join(tmp, "fabric.binpb");
  run(["build", fabric, "--path", join(fabric, "gossip", "message.proto"), "--path", join(fabric, "msp", "identities.proto"), "-o", image]);
  run(["breaking", "--against", image]);
  console.log("ok");

  process.stdout.write("src/gen is fresh ... ");
  run(["generate", "--output", tmp]);
  const files = (dir) =>
    readdirSync(dir).flatMap((f) => {
      const p = join(dir, f);
      return statSync(p).isDirectory() ? files(p) : [p];
    });
  const want = new Map(files(join(tmp, "src", "gen")).map((p) => [relative(join(tmp, "src", "gen"), p), readFileSync(p)]));
  const have = new Map(files(join("src", "gen")).map((p) => [relative(join("src", "gen"), p), readFileSync(p)]));
  const stale = [...new Set([...want.keys(), ...have.keys()])].filter((k) => !want.get(k)?.equals(have.get(k) ?? Buffer.alloc(0)));
  if (stale.length > 0) {
    failed = true;
    console.log(`STALE: ${stale.join(", ")}\nRun \`npm run generate\` and commit src/gen.`);
  } else {
    console.log("ok");
  }
} catch (e) {
  failed = true;
  console.error(`\nschema check failed: ${e.message}`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
