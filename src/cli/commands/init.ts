/** `gossip-connect init`: creates an identity directory (CA, enrollment pair, TLS pairs, manifest). */
import { basename, join, resolve } from "node:path";
import { createPeerMaterial } from "../../pki/certificates.js";
import { listOf, parseCommandLine } from "../args.js";
import type { Command } from "../command.js";
import { usageError } from "../errors.js";
import { loadCaDir, manifestName, newCa, writeIdentity } from "../identity.js";
import { processOutput } from "../output.js";

const usage = `Usage: gossip-connect init --msp-id ORG --out DIR [--name NAME] [--ca DIR] [--san HOST,...] [--json]

Creates a peer identity in DIR: a CA for ORG (or the CA of --ca DIR), an
enrollment certificate and key (the gossip identity, PKI-ID = SHA-256 of
MSP ID and certificate), and TLS server and client certificates (SANs
--name, --san, localhost, 127.0.0.1 and ::1), as PEM files with a manifest,
${manifestName}. Keys are written with mode 0600. The certificates'
subject is O=ORG, CN=NAME, NAME being the name of DIR and the MSP ID
(--out ./peer1 --msp-id Org1MSP: CN=peer1.org1msp) unless --name says.

Options:
  --msp-id ORG          the MSP ID (organization) of the peer, e.g. Org1MSP
  --out DIR             directory to create (must not hold an identity yet)
  --name NAME           the identity's name, the CN of its certificates and,
                        when it is a host name, a SAN of its TLS certificates,
                        e.g. peer0.org1.example.com (default: DIR's name, a
                        dot and the MSP ID, in lower case, and no SAN)
  --ca DIR              reuse the CA of an earlier 'init' (the DIR that holds ca-key.pem);
                        its key is not copied
  --san HOST,...        extra DNS names or IP addresses for the TLS certificates
  --json                print the result as one JSON object
  -h, --help            this help

Exit codes: 0 created, 1 failure (unreadable --ca, unwritable --out), 2 usage.

Example:
  gossip-connect init --msp-id Org1MSP --out ./peer1
  gossip-connect init --msp-id Org1MSP --out ./peer2 --ca ./peer1`;

const options = {
  "msp-id": { type: "string" },
  out: { type: "string" },
  name: { type: "string" },
  ca: { type: "string" },
  san: { type: "string", multiple: true },
  json: { type: "boolean" },
} as const;

/** MSP IDs and names: 1 to 64 characters (X.520's bound on a CN), no spaces or punctuation that needs quoting. */
const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** A DNS host name: dot-separated labels of letters, digits and inner hyphens (RFC 1123). */
const hostNamePattern = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * The CN of an identity without --name: the base name of its directory and
 * the MSP ID, as Fabric's cryptogen names peer0.org1.example.com, so every
 * identity made into its own directory gets its own subject. Characters a CN
 * should not carry become '-'; a name with none left is "peer". The MSP ID
 * is kept whole where the 64-character bound allows.
 */
function defaultName(out: string, mspId: string): string {
  const msp = mspId.toLowerCase();
  const base = basename(resolve(out))
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[._-]+|[._-]+$/g, "")
    .slice(0, Math.max(0, 63 - msp.length))
    .replace(/[._-]+$/, "");
  return `${base === "" ? "peer" : base}.${msp}`.slice(0, 64);
}

export const initCommand: Command = {
  name: "init",
  usage,
  jsonErrorKey: "result",
  async run(argv) {
    const { values: v, help } = parseCommandLine("init", argv, options, { min: 0, max: 0, names: "" });
    if (help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    const mspId = v["msp-id"];
    if (mspId === undefined) throw usageError("missing --msp-id ORG", "write for example --msp-id Org1MSP");
    if (!namePattern.test(mspId)) {
      throw usageError(
        `--msp-id must be 1 to 64 letters, digits, '.', '_' or '-', got ${JSON.stringify(mspId)}`,
        "write for example --msp-id Org1MSP",
      );
    }
    if (v.out === undefined) throw usageError("missing --out DIR", "write for example --out ./peer1");
    if (v.name !== undefined && !namePattern.test(v.name)) {
      throw usageError(
        `--name must be 1 to 64 letters, digits, '.', '_' or '-', got ${JSON.stringify(v.name)}`,
        "write for example --name peer0.org1.example.com, or omit --name to name the identity after --out",
      );
    }
    const commonName = v.name ?? defaultName(v.out, mspId);
    // --name names the peer's host, as cryptogen's CN does, and cryptogen puts the CN among its TLS
    // certificate's SANs: a peer dialled by that name then passes TLS host name verification. A name that
    // cannot be a host name (`peer_1`, `a..b`) and the default name (DIR's name and the MSP ID, not meant
    // as one) are not added.
    const sans = v.name === undefined || !hostNamePattern.test(v.name) ? listOf(v.san) : [v.name, ...listOf(v.san)];
    const ca = v.ca !== undefined ? loadCaDir(v.ca) : newCa(mspId);
    const material = createPeerMaterial({ mspId, ca, commonName, altNames: sans });
    const manifest = writeIdentity(v.out, material, { writeCaKey: v.ca === undefined });
    const out = processOutput(v.json);
    const dir = resolve(v.out);
    out.record(
      "created",
      {
        dir,
        mspId,
        pkiId: manifest.pkiId,
        subject: manifest.subject,
        caReused: v.ca !== undefined,
        manifest: join(dir, manifestName),
        files: manifest.files,
      },
      "result",
    );
    return 0;
  },
};
