/** `gossip-connect members HOST:PORT`: a peer's membership view, through Fabric's MembershipRequest. */
import { randomBytes } from "node:crypto";
import type { Comm } from "../../core/comm.js";
import { authenticationCodes, type GossipError } from "../../core/errors.js";
import { type PeerIdentity, type PkiId, pkiIdHex, type RemotePeer } from "../../core/identity.js";
import type { ReceivedMessage } from "../../core/received-message.js";
import { X509CryptoService } from "../../core/x509-crypto.js";
import { parseCommandLine, parseHostPort, parseInteger } from "../args.js";
import { type Command, dialFlagsHelp } from "../command.js";
import { dialComm, dialOptions, dialSetup } from "../dial.js";
import { explain, failure } from "../errors.js";
import {
  checkEntries,
  type IdentityBook,
  incNumDate,
  type MemberEntry,
  membershipRequest,
  missingIdentities,
  nextMatching,
  pullIdentities,
  signedAlive,
} from "../membership-query.js";
import { type Output, processOutput } from "../output.js";

const defaultTimeoutMs = 5000;
/** Fabric's pull windows (peer.gossip.digestWaitTime, responseWaitTime). */
const digestWaitMs = 1000;
const responseWaitMs = 2000;
/** Internal endpoint we announce when none is given: nobody listens there, so the peer soon presumes us dead. */
const nowhere = "127.0.0.1:0";

const usage = `Usage: gossip-connect members HOST:PORT --identity DIR [--external-endpoint HOST:PORT]
                              [--internal-endpoint HOST:PORT] [--timeout MS] [--trust-ca FILE,...] [--no-tls] [--json]

Asks a gossip peer (ours, or a Hyperledger Fabric peer) for its membership
view, as a Fabric peer joining through it would: an authenticated gossip
connection, then a MembershipRequest (tag EMPTY, random nonce) carrying our
freshly signed alive message (secret envelope with our internal endpoint
for a peer of our organization). It waits for the MembershipResponse with
that nonce, pulls the identities of entries that carry none (Fabric's
identity pull: Hello, DataDigest, DataRequest, DataUpdate), verifies every
entry's signature with the identity it carries or the one we know, and
prints one row per member: PKI-ID, organization, endpoint, internal
endpoint (when disclosed to us), alive/dead, start time (inc_num, ns) and
seq_num, and the signature check. The responder's own entry comes last
among the alive ones and is marked.

Which peers answer (Fabric's disclosure policy): a peer answers a member of
its own organization; a peer of another organization only if both it and
we have an external endpoint. Otherwise a Fabric peer closes the connection
without an answer ("Got a membership request from a peer that shouldn't
have sent one"): give --external-endpoint HOST:PORT. The peer also lists
us afterwards as a member, until it finds us unreachable.

Options:
  --identity DIR        our identity (from 'gossip-connect init'); required. The peer must
                        trust its CA (its organization, or one of a channel it joined). Use one
                        that no running peer uses: two processes with one certificate confuse
                        every view (Fabric logs "Bad configuration detected")
  --external-endpoint HOST:PORT
                        our external endpoint (Member.endpoint), needed to be answered by a
                        peer of another organization (default: none)
  --internal-endpoint HOST:PORT
                        our internal endpoint, in the secret envelope sent to a peer of our
                        organization (default: --external-endpoint, else ${nowhere}: an
                        endpoint nobody listens on)
  --timeout MS          how long to wait for the response, 1 to 600000 (default ${defaultTimeoutMs})
${dialFlagsHelp}
                        (with --json: one {"result":"member",...} line per entry, then
                        {"result":"members",...}; 64-bit numbers as decimal strings)
  -h, --help            this help

Exit codes: 0 answered, 1 failure (unreachable, untrusted, no answer within --timeout,
            connection closed by the peer), 2 usage.

Example:
  gossip-connect members 127.0.0.1:7051 --identity ./peer2 --trust-ca ./peer1/ca-cert.pem`;

const options = {
  ...dialOptions,
  identity: { type: "string" },
  "external-endpoint": { type: "string" },
  "internal-endpoint": { type: "string" },
  timeout: { type: "string" },
} as const;

/** Resolves when the connection to `remote` closes (the peer refusing to answer closes it). */
function closedBy(comm: Comm, remote: string): { closed: Promise<GossipError | undefined>; stop: () => void } {
  const it = comm.connectionEvents[Symbol.asyncIterator]();
  const closed = (async () => {
    for (;;) {
      const r = await it.next();
      if (r.done) return new Promise<never>(() => {}); // the comm stopped: never a refusal
      if (r.value.type === "disconnected" && pkiIdHex(r.value.connection.pkiId) === remote) return r.value.error;
    }
  })();
  return { closed, stop: () => void it.return?.() };
}

export const membersCommand: Command = {
  name: "members",
  usage,
  jsonErrorKey: "result",
  async run(argv) {
    const { values: v, positionals, help } = parseCommandLine("members", argv, options, { min: 1, max: 1, names: "HOST:PORT" });
    if (help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    const { endpoint } = parseHostPort("HOST:PORT", positionals[0] as string);
    const external = v["external-endpoint"] !== undefined ? parseHostPort("--external-endpoint", v["external-endpoint"]).endpoint : "";
    const internal =
      v["internal-endpoint"] !== undefined ? parseHostPort("--internal-endpoint", v["internal-endpoint"]).endpoint : external || nowhere;
    const timeoutMs = v.timeout !== undefined ? parseInteger("--timeout", v.timeout, 1, 600_000, defaultTimeoutMs) : defaultTimeoutMs;
    const setup = dialSetup(v, "members");
    const crypto = new X509CryptoService(setup.security.identity);
    const comm = dialComm(setup, {}, crypto);
    const ctx = { endpoint, noTls: !setup.tls };
    const out = processOutput(v.json);
    try {
      let remote: { pkiId: PkiId; identity: PeerIdentity };
      try {
        remote = await comm.handshake({ endpoint });
      } catch (e) {
        throw explain(e, ctx);
      }
      const remoteHex = pkiIdHex(remote.pkiId);
      const remoteOrg = crypto.organizationOf(remote.identity);
      const sameOrg = remoteOrg === crypto.organizationOf(crypto.identity);
      const book: IdentityBook = new Map([
        [pkiIdHex(comm.pkiId), { identity: crypto.identity, source: "self" as const }],
        [remoteHex, { identity: remote.identity, source: "handshake" as const }],
      ]);
      const nonce = randomBytes(8).readBigUInt64BE();
      const self = { externalEndpoint: external, internalEndpoint: internal, incNum: BigInt(Date.now()) * 1_000_000n, seqNum: 1n };
      const request = membershipRequest(nonce, signedAlive(crypto, self, sameOrg));
      const peer: RemotePeer = { endpoint, pkiId: remote.pkiId };
      const sub = comm.accept((m) => m.message.content.case === "memRes" && m.message.nonce === nonce);
      const watch = closedBy(comm, remoteHex);
      let answer: ReceivedMessage | undefined;
      let closed = false;
      let closedWith: GossipError | undefined;
      void watch.closed.then((error) => {
        closed = true;
        closedWith = error;
      });
      try {
        await comm.send(request, peer);
        answer = await nextMatching(sub, timeoutMs, watch.closed);
      } finally {
        sub.close();
        watch.stop();
      }
      if (answer?.message.content.case !== "memRes") {
        // A gossip-connect peer says in its status that it refused our identity: that is the cause
        // then, not the disclosure policy (a Fabric peer's status carries no gossip code).
        if (closedWith?.remoteCode !== undefined && authenticationCodes.has(closedWith.remoteCode)) throw explain(closedWith, ctx);
        const crossOrg = !sameOrg && external === "";
        const what = closed
          ? "closed the connection without answering our MembershipRequest"
          : `did not answer our MembershipRequest within ${timeoutMs} ms`;
        throw failure(
          `${endpoint} (${remoteOrg}) ${what}${crossOrg ? " (it answers a peer of another organization only if that peer has an external endpoint)" : ""}`,
          crossOrg
            ? "give --external-endpoint HOST:PORT, or ask a peer of our own organization"
            : "check that the peer runs the membership layer and trusts our CA (its log says why it refused), or raise --timeout",
          { code: "no_response" },
        );
      }
      const response = answer.message.content.value;
      const wanted = missingIdentities(crypto, response, book);
      if (wanted.length > 0) {
        await pullIdentities(comm, crypto, peer, wanted, book, { digestWaitMs, responseWaitMs }, randomBytes(8).readBigUInt64BE());
      }
      const entries = checkEntries(crypto, response, book);
      print(out, endpoint, remoteHex, remoteOrg, nonce, entries, pkiIdHex(comm.pkiId));
      return 0;
    } finally {
      await comm.stop();
    }
  },
};

function print(
  out: Output,
  endpoint: string,
  responder: string,
  org: string,
  nonce: bigint,
  entries: readonly MemberEntry[],
  us: string,
): void {
  const alive = entries.filter((e) => e.state === "alive").length;
  const dead = entries.length - alive;
  if (out.json) {
    for (const e of entries) {
      out.record(
        "member",
        {
          pkiId: e.pkiId,
          organization: e.organization ?? null,
          endpoint: e.endpoint,
          internalEndpoint: e.internalEndpoint ?? null,
          state: e.state,
          incNum: e.incNum,
          seqNum: e.seqNum,
          started: incNumDate(e.incNum) ?? null,
          signature: e.signature,
          identity: e.identitySource ?? null,
          responder: e.responder,
          us: e.pkiId === us,
          ...(e.note ? { note: e.note } : {}),
        },
        "result",
      );
    }
    out.record("members", { endpoint, pkiId: responder, organization: org, nonce, alive, dead }, "result");
    return;
  }
  out.line(`membership view of ${endpoint} (PKI-ID ${responder}, ${org}): ${alive} alive, ${dead} dead`);
  const header = ["PKI-ID", "ORG", "ENDPOINT", "INTERNAL", "STATE", "STARTED (inc_num)", "SEQ", "SIGNATURE"];
  const rows = entries.map((e) => [
    e.pkiId.slice(0, 16),
    e.organization ?? "?",
    e.endpoint || "-",
    e.internalEndpoint ?? "-",
    e.state,
    incNumDate(e.incNum) ?? String(e.incNum),
    String(e.seqNum),
    `${e.signature}${e.responder ? " (responder)" : ""}${e.pkiId === us ? " (us)" : ""}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fmt = (r: readonly string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  out.line(fmt(header));
  for (const r of rows) out.line(fmt(r));
  for (const e of entries) {
    if (e.note) out.line(`note: ${e.pkiId.slice(0, 16)}: ${e.note}`);
  }
}
