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
 * the hashes of the remote's leaf (`getPeerX509Certificate`) and of ours
 * (`getX509Certificate`: our client certificate when we dialed, our server
 * certificate when we accepted).
 */
export function socketFacts(socket: Socket | undefined, session: http2.Http2Session | undefined): StreamFacts {
  const remoteAddress = formatAddress(socket?.remoteAddress, socket?.remotePort);
  let facts = session ? factsBySession.get(session) : undefined;
  if (!facts) {
    const tlsSocket = socket as (TLSSocket & { encrypted?: boolean }) | undefined;
    const tls = tlsSocket?.encrypted === true;
    // The X509Certificate getters rather than getPeerCertificate/getCertificate,
    // which build an object of every field (names, extensions, three
    // fingerprints) to be read for `raw` alone: per session, that costs a
    // hub's RSS a few KB per connection (malloc and heap churn it keeps).
    facts = {
      tls,
      remoteCertHash: tls ? certHash(tlsSocket.getPeerX509Certificate()?.raw) : undefined,
      localCertHash: tls ? ownCertHash(tlsSocket.getX509Certificate()?.raw) : undefined,
    };
    if (session) factsBySession.set(session, facts);
  }
  return { remoteAddress, ...facts };
}
