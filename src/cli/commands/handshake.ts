/** `gossip-connect handshake HOST:PORT`: the comm's deep probe; prints who answered. */
import { X509Certificate } from "node:crypto";
import { parseIdentity, pkiIdHex } from "../../core/identity.js";
import { parseCommandLine, parseHostPort, parsePkiId } from "../args.js";
import { type Command, dialFlagsHelp } from "../command.js";
import { dialComm, dialOptions, dialSetup } from "../dial.js";
import { explain } from "../errors.js";
import { subjectLine } from "../identity.js";
import { processOutput } from "../output.js";

const usage = `Usage: gossip-connect handshake HOST:PORT --identity DIR [--pki-id HEX] [--trust-ca FILE,...] [--no-tls] [--json]

Fabric's deep probe (Comm.handshake): dials HOST:PORT, runs the
authenticated gossip handshake with probe = true (the remote registers
nothing), and prints the remote's PKI-ID, MSP ID and certificate subject.
The remote must trust our CA, and we must trust its CA (--trust-ca).

Options:
  --identity DIR        our identity (from 'gossip-connect init'); required
  --pki-id HEX          fail unless the remote answers with this PKI-ID (64 hex characters)
${dialFlagsHelp}
  -h, --help            this help

Exit codes: 0 authenticated, 1 failure (unreachable, untrusted, other PKI-ID), 2 usage.

Example:
  gossip-connect handshake 127.0.0.1:7051 --identity ./peer2 --trust-ca ./peer1/ca-cert.pem`;

const options = { ...dialOptions, identity: { type: "string" }, "pki-id": { type: "string" } } as const;

export const handshakeCommand: Command = {
  name: "handshake",
  usage,
  jsonErrorKey: "result",
  async run(argv) {
    const { values: v, positionals, help } = parseCommandLine("handshake", argv, options, { min: 1, max: 1, names: "HOST:PORT" });
    if (help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    const { endpoint } = parseHostPort("HOST:PORT", positionals[0] as string);
    const pkiId = v["pki-id"] !== undefined ? parsePkiId(v["pki-id"]) : undefined;
    const setup = dialSetup(v, "handshake");
    const comm = dialComm(setup);
    let remote: Awaited<ReturnType<typeof comm.handshake>>;
    try {
      remote = await comm.handshake({ endpoint, pkiId });
    } catch (e) {
      throw explain(e, { endpoint, noTls: !setup.tls });
    } finally {
      await comm.stop();
    }
    const { mspId, idBytes } = parseIdentity(remote.identity);
    let subject: string | undefined;
    let issuer: string | undefined;
    let validTo: string | undefined;
    try {
      const cert = new X509Certificate(Buffer.from(idBytes));
      subject = subjectLine(cert);
      issuer = cert.issuer.split("\n").join(", ");
      validTo = new Date(cert.validTo).toISOString();
    } catch {
      // Not an X.509 identity: print what we have.
    }
    processOutput(v.json).record("authenticated", { endpoint, pkiId: pkiIdHex(remote.pkiId), mspId, subject, issuer, validTo }, "result");
    return 0;
  },
};
