/** Helpers the orchestrator (bench/run.mjs) imports from the bundle: the run's CA and message sizes. */
import { createCa } from "../../src/pki/index.js";
import { dataFrameSize } from "./common/wire.js";

/** Creates the CA that issues every certificate of one benchmark run. */
export function makeCa(): { certPem: string; keyPem: string } {
  const ca = createCa({ commonName: "ca.bench", organization: "BenchMSP" });
  return { certPem: ca.certPem, keyPem: ca.keyPem };
}

/** Bytes on the wire (gRPC frame) of a data message with `size` payload bytes, at a typical sequence number. */
export function wireBytes(size: number): number {
  return dataFrameSize(100_000, size);
}
