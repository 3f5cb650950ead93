/**
 * What a stream knows of its connection, read from the socket the same way on
 * both sides: the remote's `host:port`, whether it is TLS, and the SHA-256 of
 * each end's DER leaf certificate (computed once per HTTP/2 session).
 */
import { createHash } from "node:crypto";
import type * as http2 from "node:http2";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { StreamFacts } from "./wire-stream.js";

type ConnectionFacts = Omit<StreamFacts, "remoteAddress">;

const factsBySession = new WeakMap<http2.Http2Session, ConnectionFacts>();

/** `address:port`, with brackets for IPv6; `unknown` without an address. */
export function formatAddress(address: string | undefined, port: number | undefined): string {
  if (address === undefined) return "unknown";
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/** SHA-256 of a DER certificate; undefined for none. */
export function certHash(der: Uint8Array | undefined): Uint8Array | undefined {
  return der && der.length > 0 ? new Uint8Array(createHash("sha256").update(der).digest()) : undefined;
}

/**
 * Hashes of our own certificates, shared by every session that presents the
 * same one (a server has one; a copy per session would cost every idle
 * connection a buffer). Bounded: a process rarely has more than a few.
 */
const ownCertHashes = new Map<string, Uint8Array>();
const maxOwnCertHashes = 64;

function ownCertHash(der: Uint8Array | undefined): Uint8Array | undefined {
  const hash = certHash(der);
  if (hash === undefined) return undefined;
  const key = Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString("hex");
  const known = ownCertHashes.get(key);
  if (known !== undefined) return known;
  if (ownCertHashes.size >= maxOwnCertHashes) ownCertHashes.clear();
  ownCertHashes.set(key, hash);
  return hash;
}

/**
 * The facts of a stream on `session` over `socket`: remote address, TLS, and
 * the hashes of the remote's leaf (`getPeerCertificate`) and of ours
 * (`getCertificate`: our client certificate when we dialed, our server
 * certificate when we accepted).
 */
export function socketFacts(socket: Socket | undefined, session: http2.Http2Session | undefined): StreamFacts {
  const remoteAddress = formatAddress(socket?.remoteAddress, socket?.remotePort);
  let facts = session ? factsBySession.get(session) : undefined;
  if (!facts) {
    const tlsSocket = socket as (TLSSocket & { encrypted?: boolean }) | undefined;
    const tls = tlsSocket?.encrypted === true;
    const local = tls ? tlsSocket.getCertificate() : null;
    facts = {
      tls,
      remoteCertHash: tls ? certHash(tlsSocket.getPeerCertificate(false)?.raw) : undefined,
      localCertHash: local && "raw" in local ? ownCertHash(local.raw as Buffer) : undefined,
    };
    if (session) factsBySession.set(session, facts);
  }
  return { remoteAddress, ...facts };
}
