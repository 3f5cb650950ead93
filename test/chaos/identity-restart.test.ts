// A peer restarts on the same port with a new identity:
// - same organization: the sender that still targets the old PKI-ID gets an
//   identity-switch event (old -> new) and the message is delivered to the
//   new peer; sendWithAck to the new PKI-ID succeeds;
// - another organization: refused with the typed UnexpectedPeer error
//   (presumed dead for send, the error in sendWithAck's result), and nothing
//   reaches the impostor.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { IdentitySwitchEvent, PresumedDeadEvent } from "../../src/core/comm.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import { bytesEqual } from "../../src/core/identity.js";
import { createPeerMaterial } from "../../src/pki/certificates.js";
import { must } from "../helpers/must.js";
import { caFor, cleanupAfter, dataMessage, eventually, startPeer } from "../helpers/peers.js";
import { freePort, killAllWorkers, sleep, spawnWorker, workerPeer } from "./workers.js";

const { closers } = cleanupAfter(killAllWorkers);

const hex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));

describe("restart on the same port with a new identity", () => {
  it("same org: identity switch and delivery; other org: refused with UnexpectedPeer", async () => {
    const org1 = caFor("Org1MSP");
    const org2 = caFor("Org2MSP");
    const port = await freePort();
    const listen = { host: "127.0.0.1", port };
    const endpoint = `127.0.0.1:${port}`;
    const cfg = (m: ReturnType<typeof createPeerMaterial>) => ({
      peers: [workerPeer(m, { Org1MSP: org1, Org2MSP: org2 }, { listen })],
      autoAck: true,
      reportEach: true,
    });
    const p = await startPeer({ mspId: "Org1MSP", trust: { Org2MSP: org2 }, options: { dialTimeoutMs: 2000, connTimeoutMs: 2000 } });
    closers.push(() => p.close());
    const switches: IdentitySwitchEvent[] = [];
    const dead: PresumedDeadEvent[] = [];
    void (async () => {
      for await (const s of p.comm.identitySwitch) switches.push(s);
    })();
    void (async () => {
      for await (const d of p.comm.presumedDead) dead.push(d);
    })();

    // The first incarnation, known to the sender.
    const w1 = await spawnWorker("w1", cfg(createPeerMaterial({ mspId: "Org1MSP", ca: org1 })));
    const x = hex(must(w1.peers[0], "w1's peer").pkiId);
    assert.equal((await p.comm.sendWithAck(dataMessage(1), 3000, 1, { endpoint, pkiId: x })).ackCount, 1);
    w1.worker.kill("SIGKILL");
    await w1.worker.exited;
    await eventually(() => p.comm.connections().length === 0, 5000, "the connection to the killed peer to close");

    // Same org, new identity, same port.
    const w2 = await spawnWorker("w2", cfg(createPeerMaterial({ mspId: "Org1MSP", ca: org1 })));
    const w2Peer = must(w2.peers[0], "w2's peer");
    const y = hex(w2Peer.pkiId);
    assert.equal(w2Peer.endpoint, endpoint);
    assert.ok(!bytesEqual(x, y));
    await p.comm.send(dataMessage(2), { endpoint, pkiId: x });
    await w2.worker.waitFor((e) => e.ev === "recv" && e.seq === "2", 5000, "delivery to the new identity");
    await eventually(() => switches.length === 1, 2000, "an identity-switch event");
    const sw = must(switches[0], "an identity-switch event");
    assert.ok(bytesEqual(sw.oldPkiId, x), "old PKI-ID");
    assert.ok(bytesEqual(sw.newPkiId, y), "new PKI-ID");
    assert.equal(sw.endpoint, endpoint);
    assert.equal(dead.length, 0, "a switch within the org is not a death");
    const r2 = await p.comm.sendWithAck(dataMessage(3), 3000, 1, { endpoint, pkiId: y });
    assert.equal(r2.ackCount, 1, `sendWithAck to the new PKI-ID: ${r2.toString()}`);
    w2.worker.kill("SIGKILL");
    await w2.worker.exited;
    await eventually(() => p.comm.connections().length === 0, 5000, "the connection to the killed peer to close");

    // Another org (trusted CA), same port: refused.
    const w3 = await spawnWorker("w3", cfg(createPeerMaterial({ mspId: "Org2MSP", ca: org2 })));
    const z = hex(must(w3.peers[0], "w3's peer").pkiId);
    const r3 = await p.comm.sendWithAck(dataMessage(4), 3000, 1, { endpoint, pkiId: y });
    const err = r3.results[0]?.error;
    assert.ok(err instanceof GossipError, "a typed error");
    assert.equal(err.code, ErrorCode.UnexpectedPeer);
    await p.comm.send(dataMessage(5), { endpoint, pkiId: y });
    await eventually(() => dead.length >= 1, 5000, "presumed dead");
    const d = must(dead[0], "a presumed-dead event");
    assert.equal(d.error.code, ErrorCode.UnexpectedPeer);
    assert.ok(bytesEqual(d.pkiId, y));
    await sleep(300);
    assert.equal(w3.worker.all("recv").length, 0, "nothing delivered to the other org's peer");
    assert.equal(switches.length, 1, "no identity switch across orgs");
    assert.equal(p.comm.connections().length, 0, "no connection registered to the other org's peer");
    console.log(
      JSON.stringify({
        test: "identity-restart",
        sameOrg: { event: "identitySwitch", delivered: true, ackToNewPkiId: r2.ackCount === 1 },
        otherOrg: { sendWithAckError: err.code, message: err.message, presumedDead: d.error.code, delivered: 0 },
        otherPkiId: Buffer.from(z).toString("hex").slice(0, 16),
      }),
    );
  });
});
