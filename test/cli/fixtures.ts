/** Identity directories for the CLI tests, made with the real `gossip-connect init`. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli, tempDir } from "./cli-helpers.js";

/** p1, p2, p3: Org1MSP, one CA (p1 created it); q1: Org2MSP, its own CA. */
export interface Identities {
  readonly dir: string;
  readonly p1: string;
  readonly p2: string;
  readonly p3: string;
  readonly q1: string;
  /** p1's CA certificate (Org1MSP). */
  readonly org1Ca: string;
  /** q1's CA certificate (Org2MSP). */
  readonly org2Ca: string;
  remove(): void;
}

export async function makeIdentities(prefix: string): Promise<Identities> {
  const tmp = tempDir(prefix);
  const p = (name: string) => join(tmp.dir, name);
  const [r1, rq] = await Promise.all([
    cli(["init", "--msp-id", "Org1MSP", "--out", p("p1")]),
    cli(["init", "--msp-id", "Org2MSP", "--out", p("q1")]),
  ]);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(rq.code, 0, rq.stderr);
  const [r2, r3] = await Promise.all([
    cli(["init", "--msp-id", "Org1MSP", "--out", p("p2"), "--ca", p("p1")]),
    cli(["init", "--msp-id", "Org1MSP", "--out", p("p3"), "--ca", p("p1")]),
  ]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(r3.code, 0, r3.stderr);
  return {
    dir: tmp.dir,
    p1: p("p1"),
    p2: p("p2"),
    p3: p("p3"),
    q1: p("q1"),
    org1Ca: join(p("p1"), "ca-cert.pem"),
    org2Ca: join(p("q1"), "ca-cert.pem"),
    remove: tmp.remove,
  };
}
