/**
 * Server CPU per Ping at 32 in flight: W4's raw `node:http2` Ping server
 * (stack a) and a gossip-connect app (stack c), both in ONE process,
 * alternated round by round, each Pinged by the same bare raw client (one
 * child process, a connection to each). In one process, what a process's
 * own state costs (its JIT's choices, its heap, its place on the machine)
 * is the same for both servers; W4's separate server processes differ by
 * that too (bench/README.md, W4: `W4 server cpu/Ping a+g/a`).
 *
 *   npx esbuild bench/tools/ping-server-ab.ts --bundle --platform=node --format=esm \
 *     --packages=external --outfile=tmp-bench/ping-server-ab.mjs && node tmp-bench/ping-server-ab.mjs [rounds]
 *
 * Prints each round's server CPU per Ping of both, then the medians and the
 * median per-round ratio gossip/raw. Keep the bundle inside the tree (its
 * packages are resolved from there).
 */
import { fork } from "node:child_process";
import * as http2 from "node:http2";
import { createCa, issueCertificate } from "../../src/pki/index.js";
import { ping as rawPing } from "../workers/stacks/raw.js";
import { benchApp, rawPingServer } from "./ping-servers.js";

const COUNT = 5000;
const INFLIGHT = 32;

interface ClientSetup {
  ca: string[];
  cert: string;
  key: string;
  ports: number[];
}

/** The child: one raw client session to each server; on request, COUNT Pings to server `i`. */
function client(): void {
  process.once("message", async (m: ClientSetup) => {
    const sessions = await Promise.all(
      m.ports.map(async (port) => {
        const session = http2.connect(`https://127.0.0.1:${port}`, { ca: m.ca, cert: m.cert, key: m.key });
        session.on("error", () => {});
        await new Promise((r) => session.once("connect", r));
        return session;
      }),
    );
    process.on("message", async (x: { i: number }) => {
      const session = sessions[x.i] as http2.ClientHttp2Session;
      let started = 0;
      const lane = async () => {
        while (started < COUNT) {
          started++;
          await rawPing(session);
        }
      };
      await Promise.all(Array.from({ length: INFLIGHT }, lane));
      process.send?.({ done: true });
    });
    process.send?.({ ready: true });
  });
  process.on("disconnect", () => process.exit(0));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function main(rounds: number): Promise<void> {
  const ca = createCa({ commonName: "ca.ping-server-ab" });
  const server = issueCertificate(ca, { commonName: "server", usage: "server", altNames: ["127.0.0.1"] });
  const clientCert = issueCertificate(ca, { commonName: "client", usage: "client" });
  const raw = await rawPingServer({ cert: server.certPem, key: server.keyPem, ca: ca.certPem });
  // A gossip-connect app at the bench's options, its identity from the same CA.
  const app = await benchApp({ certPem: ca.certPem, keyPem: ca.keyPem }, "ping-server", { connTimeoutMs: 15_000 });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const child = fork(process.argv[1] ?? "", ["--client"]);
  const ask = (msg: object) =>
    new Promise<void>((resolve) => {
      child.once("message", () => resolve());
      child.send(msg);
    });
  const ports = [raw.port, (app.server.address() as { port: number }).port];
  await ask({ ca: [ca.certPem], cert: clientCert.certPem, key: clientCert.keyPem, ports } satisfies ClientSetup);
  /** This process's CPU per Ping while server `i` answers COUNT Pings. */
  const serverUs = async (i: number) => {
    const c0 = process.cpuUsage();
    await ask({ i });
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / COUNT;
  };
  await serverUs(0); // warm-up
  await serverUs(1);
  const raws: number[] = [];
  const ours: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const got: number[] = [];
    for (const i of r % 2 ? [1, 0] : [0, 1]) got[i] = await serverUs(i);
    const [a, c] = got as [number, number];
    raws.push(a);
    ours.push(c);
    ratios.push(c / a);
    console.log(`round ${r + 1}: server raw ${a.toFixed(1)} us/ping, gossip ${c.toFixed(1)} us/ping, c/a ${(c / a).toFixed(3)}`);
  }
  console.log(
    `median server CPU per Ping: raw ${median(raws).toFixed(1)} us, gossip ${median(ours).toFixed(1)} us, median per-round c/a ${median(ratios).toFixed(3)}`,
  );
  child.disconnect();
  await app.close();
  raw.server.close();
}

if (process.argv.includes("--client")) client();
else await main(Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 10));
