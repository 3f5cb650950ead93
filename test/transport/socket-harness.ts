/**
 * Harnesses of the socket transports for the compliance suite: the real
 * server (createGossipServer: the plugin's raw gRPC path and its
 * connect-fastify path) on loopback, fed to a stand-in comm that only
 * collects the streams it is handed, and either our client (PeerDialer, the
 * raw gRPC client over connect-node's session manager) or a Connect-protocol
 * client stream (connect-node's Connect transport, connect-client.ts).
 */
import { X509Certificate } from "node:crypto";
import type { AddressInfo } from "node:net";
import { createServer, type Server, type Socket } from "node:net";
import { PeerDialer } from "../../src/client/dialer.js";
import type { Comm } from "../../src/core/comm.js";
import { resolveCommConfig } from "../../src/core/config.js";
import type { WireStream } from "../../src/core/transport.js";
import { createPeerMaterial } from "../../src/pki/certificates.js";
import { createGossipServer } from "../../src/server/create-server.js";
import { caFor } from "../helpers/peers.js";
import { certHash, type TransportHarness, within } from "./compliance.js";
import { connectProtocolStream } from "./connect-client.js";

const dialTimeoutMs = 500;

/** A listener that accepts TCP and never answers (no TLS, no HTTP/2): a dial to it times out. */
async function silentListener(): Promise<{
  endpoint: string;
  close(): Promise<void>;
}> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A loopback port where nothing listens (a dial is refused). */
async function closedPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return `127.0.0.1:${port}`;
}

/** The real server and a client of `protocol`, cleartext (h2c) or mutual TLS. */
export async function socketHarness(options: { tls: boolean; protocol: "grpc" | "connect" | "grpcweb" }): Promise<TransportHarness> {
  const config = resolveCommConfig({ dialTimeoutMs });
  const accepted: WireStream[] = [];
  let wake: (() => void) | undefined;
  // The plugin uses only these two members of a comm it is given (and owns nothing of it).
  const collector = {
    config,
    handleStream(s: WireStream): Promise<void> {
      accepted.push(s);
      wake?.();
      return Promise.resolve();
    },
  } as unknown as Comm;
  const mspId = "Org1MSP";
  const ca = caFor(mspId);
  const m = createPeerMaterial({ mspId, ca });
  const app = await createGossipServer({
    comm: collector,
    reflection: false,
    tls: options.tls ? { cert: m.tlsServer.certPem, key: m.tlsServer.keyPem, ca: ca.certPem } : undefined,
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const endpoint = `127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const clientTls = options.tls ? { ca: ca.certPem, cert: m.tlsClient.certPem, key: m.tlsClient.keyPem } : undefined;
  const hashes = options.tls
    ? {
        client: certHash(new X509Certificate(m.tlsClient.certPem).raw),
        server: certHash(new X509Certificate(m.tlsServer.certPem).raw),
      }
    : undefined;
  const dialer = new PeerDialer({ tls: clientTls, options: { dialTimeoutMs } });
  const silent: Awaited<ReturnType<typeof silentListener>>[] = [];
  const serverEnd = () =>
    within(
      new Promise<WireStream>((resolve) => {
        const take = () => {
          const s = accepted.shift();
          if (s) resolve(s);
          else wake = take;
        };
        take();
      }),
      5000,
      "the server's end of the stream",
    );
  const connectClient = options.protocol === "grpc" ? undefined : connectProtocolStream(endpoint, clientTls, hashes, options.protocol);
  return {
    endpoint,
    certHashes: hashes,
    // HTTP/2 stream window (initialWindowBytes, 1 MiB), the reader's decoded
    // envelopes (recvBuffSize) and the writer's buffer (64 KiB), with room
    // for Node's and the kernel's buffers.
    maxAheadBytes: 4 * 1024 * 1024,
    typedWrites: options.protocol !== "grpc",
    async open(o) {
      const client = connectClient
        ? await connectClient.open(o?.streamTimeoutMs)
        : await dialer.openStream(endpoint, {
            signal: AbortSignal.timeout(5000),
            streamTimeoutMs: o?.streamTimeoutMs,
          });
      return { client, server: await serverEnd() };
    },
    dialer:
      options.protocol === "grpc"
        ? {
            dialer,
            refusedEndpoint: closedPort,
            async unreachableEndpoint() {
              const l = await silentListener();
              silent.push(l);
              return l.endpoint;
            },
          }
        : undefined,
    async close() {
      connectClient?.close();
      for (const l of silent) await l.close();
      await app.close();
    },
  };
}
