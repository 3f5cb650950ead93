// Shutdown with a peer that does not read: an authenticated GossipStream from
// a raw HTTP/2 client that stops reading must not hold comm.stop() or
// app.close() beyond their bounds. (Under CPU contention a starved peer looks
// like this; it held the chaos suite's close() past 12 s.)
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { encodeEnvelope, gossipMessage, signMessage } from "../../src/core/envelope.js";
import { X509CryptoService } from "../../src/core/x509-crypto.js";
import { createPeerMaterial } from "../../src/pki/certificates.js";
import { grpcFrame } from "../helpers/h2.js";
import { FrameType, frame, grpcRequestBlock, headersFrames, RawH2Connection, settings } from "../helpers/h2-frames.js";
import { caFor, dataMessage, eventually, startPeer, type TestPeer } from "../helpers/peers.js";

const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const drainTimeoutMs = 300;
const initialWindowSize = 0x4;

/** Resolves after `ms` with "timeout" (unref'd). */
function timeout(ms: number): Promise<"timeout"> {
  return new Promise((r) => setTimeout(() => r("timeout"), ms).unref());
}

/**
 * A raw h2c client that authenticates a GossipStream to `peer` and never
 * reads its socket. `window` is the flow-control window it announces: 0 holds
 * every DATA frame (and so the status trailers) of the server back; a huge one
 * lets the server write until the socket's buffers are full.
 */
async function unreadPeer(peer: TestPeer, window: number): Promise<{ raw: RawH2Connection; pkiId: Uint8Array }> {
  const port = Number(peer.endpoint.split(":").at(-1));
  const raw = new RawH2Connection(port, { read: false });
  cleanups.push(() => raw.destroy());
  await raw.connected;
  const ca = caFor("Org1MSP");
  const m = createPeerMaterial({ mspId: "Org1MSP", ca });
  const crypto = new X509CryptoService({
    mspId: "Org1MSP",
    certificate: m.identity.certPem,
    privateKey: m.identity.keyPem,
    trustedRoots: { Org1MSP: [ca.certPem] },
  });
  const pkiId = crypto.pkiIdOf(crypto.identity);
  const hello = gossipMessage({ content: { case: "conn", value: { pkiId, identity: crypto.identity } } });
  const connUpdate = Buffer.alloc(4);
  connUpdate.writeUInt32BE(Math.max(0, window - 65_535));
  raw.write(
    Buffer.concat([
      settings([[initialWindowSize, window]]),
      ...(window > 65_535 ? [frame(FrameType.WindowUpdate, 0, 0, connUpdate)] : []),
      headersFrames(1, grpcRequestBlock(peer.endpoint)),
      frame(FrameType.Data, 0, 1, grpcFrame(Buffer.from(encodeEnvelope(signMessage(crypto, hello))))),
    ]),
  );
  await eventually(() => peer.comm.connections().length === 1, 5000, "the raw client's connection registered");
  return { raw, pkiId };
}

describe("shutdown with a peer that does not read", () => {
  it("comm.stop() completes although the stream's status can never go out (flow-control window 0)", async () => {
    const p = await startPeer({ tls: false, options: { drainTimeoutMs } });
    cleanups.push(() => p.close());
    await unreadPeer(p, 0);
    const t0 = performance.now();
    const result = await Promise.race([p.comm.stop().then(() => "stopped" as const), timeout(10_000)]);
    const ms = performance.now() - t0;
    assert.equal(result, "stopped", "comm.stop() did not complete within 10 s");
    // Two drain phases, then at most a second for the status to go out before the stream is destroyed.
    assert.ok(ms < 2 * drainTimeoutMs + 2000, `comm.stop() took ${Math.round(ms)} ms`);
    assert.equal(p.comm.connections().length, 0);
  });

  it("app.close() completes although the peer's socket is full (it does not read)", async () => {
    const p = await startPeer({ tls: false, options: { drainTimeoutMs } });
    cleanups.push(() => p.close());
    const { raw, pkiId } = await unreadPeer(p, 0x7fff_ffff);
    // 24 MiB towards a peer that reads nothing: far more than the socket buffers hold.
    const big = dataMessage(1, new Uint8Array(1 << 20));
    for (let i = 0; i < 24; i++) void p.comm.send(big, { endpoint: raw.socket.localAddress ?? "", pkiId });
    // The first megabyte does not even fit: the server's socket write stays in progress.
    await eventually(() => p.comm.stats().sendBuffered > 0, 5000, "messages queued");
    await new Promise((r) => setTimeout(r, 300));
    const t0 = performance.now();
    const result = await Promise.race([p.app.close().then(() => "closed" as const), timeout(15_000)]);
    const ms = performance.now() - t0;
    assert.equal(result, "closed", "app.close() did not complete within 15 s");
    // stop(): two drain phases and the stream's grace; closeAll: drainTimeoutMs of grace; slack for a loaded machine.
    assert.ok(ms < 3 * drainTimeoutMs + 1000 + 2000, `app.close() took ${Math.round(ms)} ms`);
  });
});
