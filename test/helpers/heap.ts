// The heap in use after full collections, for tests that assert memory kept
// per operation (a leak shows as growth that does not go with a collection).
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

setFlagsFromString("--expose-gc");
// A context made after the flag is set has `gc`, without `--expose-gc` on the test runner's command line.
const gc = runInNewContext("gc") as () => void;

/** `process.memoryUsage().heapUsed` after two full collections (the second sweeps what the first's finalizers freed). */
export function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}
