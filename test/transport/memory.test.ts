// The in-memory transport against the compliance suite, on the real clock
// (the suite's waits are real time), with and without simulated TLS.
import { randomBytes } from "node:crypto";
import { MemoryNetwork } from "../../src/core/memory-transport.js";
import type { WireStream } from "../../src/core/transport.js";
import { describeTransport, type TransportHarness, within } from "./compliance.js";

async function memoryHarness(tls: boolean): Promise<TransportHarness> {
  const windowBytes = 256 * 1024;
  const net = new MemoryNetwork({ windowBytes, dialTimeoutMs: 300 });
  const hashes = tls
    ? {
        client: new Uint8Array(randomBytes(32)),
        server: new Uint8Array(randomBytes(32)),
      }
    : undefined;
  const accepted: WireStream[] = [];
  let wake: (() => void) | undefined;
  const listener = net.listen(
    "server.example:7051",
    (s) => {
      accepted.push(s);
      wake?.();
    },
    { certHash: hashes?.server },
  );
  const dialer = net.dialer("client.example", { certHash: hashes?.client });
  let unreachable = 0;
  return {
    endpoint: "server.example:7051",
    certHashes: hashes,
    maxAheadBytes: windowBytes + 64 * 1024,
    async open(options) {
      const client = await dialer.openStream("server.example:7051", {
        signal: AbortSignal.timeout(5000),
        ...options,
      });
      const server = await within(
        new Promise<WireStream>((resolve) => {
          const take = () => {
            const s = accepted.shift();
            if (s) resolve(s);
            else wake = take;
          };
          take();
        }),
        5000,
        "server end",
      );
      return { client, server };
    },
    dialer: {
      dialer,
      refusedEndpoint: async () => "nobody.example:1",
      async unreachableEndpoint() {
        const host = `far${unreachable++}.example`;
        net.listen(`${host}:7051`, (s) => s.abort());
        net.partition(["client.example"], [host]);
        return `${host}:7051`;
      },
    },
    async close() {
      listener.close();
    },
  };
}

describeTransport("memory", () => memoryHarness(false));
describeTransport("memory, simulated TLS", () => memoryHarness(true));
