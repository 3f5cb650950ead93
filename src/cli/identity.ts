/**
 * Identity directories: what `gossip-connect init` writes and every other
 * command reads with `--identity DIR`, plus the CAs of `--trust-ca` and the
 * ephemeral development identity of `serve` without `--identity`.
 *
 * A directory holds PEM files and a manifest, `identity.json`:
 *
 * ```json
 * { "format": "gossip-connect-identity/1", "mspId": "Org1MSP", "pkiId": "<64 hex>",
 *   "subject": "O=Org1MSP, OU=peer, CN=peer1.org1msp",
 *   "files": { "caCert": "ca-cert.pem", "caKey": "ca-key.pem",
 *              "identityCert": "identity-cert.pem", "identityKey": "identity-key.pem",
 *              "tlsServerCert": "tls-server-cert.pem", "tlsServerKey": "tls-server-key.pem",
 *              "tlsClientCert": "tls-client-cert.pem", "tlsClientKey": "tls-client-key.pem" } }
 * ```
 *
 * `caKey` is present only when `init` created the CA (not with `--ca DIR`).
 */
import { createPrivateKey, type KeyObject, randomBytes, X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { ClientTlsOptions } from "../client/gossip-client.js";
import { pkiIdHex } from "../core/identity.js";
import { type X509CryptoOptions, X509CryptoService } from "../core/x509-crypto.js";
import {
  type CertificateAuthority,
  type CertifiedKey,
  createCa,
  createPeerMaterial,
  loadCa,
  type PeerMaterial,
} from "../pki/certificates.js";
import type { ServerTlsOptions } from "../server/create-server.js";
import { CliError, failure } from "./errors.js";

/** File name of the manifest in an identity directory. */
export const manifestName = "identity.json";
/** Format tag of the manifest. */
export const manifestFormat = "gossip-connect-identity/1";

/** Default file names, by manifest key. */
export const defaultFiles = {
  caCert: "ca-cert.pem",
  caKey: "ca-key.pem",
  identityCert: "identity-cert.pem",
  identityKey: "identity-key.pem",
  tlsServerCert: "tls-server-cert.pem",
  tlsServerKey: "tls-server-key.pem",
  tlsClientCert: "tls-client-cert.pem",
  tlsClientKey: "tls-client-key.pem",
} as const;

type FileKey = keyof typeof defaultFiles;
const requiredFiles: readonly Exclude<FileKey, "caKey">[] = [
  "caCert",
  "identityCert",
  "identityKey",
  "tlsServerCert",
  "tlsServerKey",
  "tlsClientCert",
  "tlsClientKey",
];

/** The manifest of an identity directory. */
export interface IdentityManifest {
  readonly format: typeof manifestFormat;
  readonly mspId: string;
  readonly pkiId: string;
  readonly subject: string;
  readonly files: Readonly<Partial<Record<FileKey, string>>>;
}

/** A peer identity ready to use: enrollment pair, TLS pairs, and the CA of its MSP. */
export interface PeerIdentityFiles {
  readonly mspId: string;
  /** Hex PKI-ID. */
  readonly pkiId: string;
  /** Subject of the enrollment certificate, one line. */
  readonly subject: string;
  /** The CA certificate of our MSP (PEM). */
  readonly caCertPem: string;
  readonly identity: CertifiedKey;
  readonly tlsServer: CertifiedKey;
  readonly tlsClient: CertifiedKey;
  /** The directory it was read from; undefined for an ephemeral identity. */
  readonly dir: string | undefined;
}

/** CAs trusted beyond our own, from `--trust-ca`. */
export interface TrustedCa {
  /** The MSP ID whose identities it may issue. */
  readonly mspId: string;
  readonly certPem: string;
  /** The file it came from. */
  readonly file: string;
}

/** One-line subject of a certificate, as `O=Org1MSP, CN=peer1.org1msp`. */
export function subjectLine(cert: X509Certificate): string {
  return cert.subject.split("\n").join(", ");
}

/** Reads a file, turning every platform error into a failure that names the file and the fix. */
export function readText(file: string, what: string, fix: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "is missing"
        : code === "EACCES"
          ? "is not readable (permission denied)"
          : code === "EISDIR"
            ? "is a directory, not a file"
            : `cannot be read (${code ?? String(e)})`;
    throw failure(`${what} ${file} ${why}`, fix, { cause: e });
  }
}

function parseCert(file: string, pem: string, what: string, fix: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (e) {
    throw failure(`${what} ${file} is not a PEM certificate (${(e as Error).message})`, fix, { cause: e });
  }
}

function parseKey(file: string, pem: string, what: string, fix: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (e) {
    throw failure(`${what} ${file} is not a PEM private key (${(e as Error).message})`, fix, { cause: e });
  }
}

/** Splits a PEM bundle into its certificates. */
export function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((p) => `${p}\n`) ?? [];
}

/**
 * Reads and checks an identity directory: the manifest, every file, and that
 * each certificate matches its key. Every problem is a failure (exit 1) naming
 * the file and the fix.
 */
export function loadIdentity(dirArg: string): PeerIdentityFiles {
  const dir = resolve(dirArg);
  const recreate = `re-create it with 'gossip-connect init --msp-id ORG --out ${dirArg}'`;
  if (!existsSync(dir)) {
    throw failure(`identity directory ${dirArg} does not exist`, `create it with 'gossip-connect init --msp-id Org1MSP --out ${dirArg}'`);
  }
  if (!statSync(dir).isDirectory()) {
    throw failure(`--identity ${dirArg} is not a directory`, "pass the directory written by 'gossip-connect init --out DIR'");
  }
  const manifestPath = join(dir, manifestName);
  const text = readText(manifestPath, "identity manifest", `pass a directory written by 'gossip-connect init', or ${recreate}`);
  let manifest: IdentityManifest;
  try {
    manifest = JSON.parse(text) as IdentityManifest;
  } catch (e) {
    throw failure(`identity manifest ${manifestPath} is not valid JSON (${(e as Error).message})`, recreate, { cause: e });
  }
  if (
    typeof manifest !== "object" ||
    manifest === null ||
    manifest.format !== manifestFormat ||
    typeof manifest.mspId !== "string" ||
    manifest.mspId === "" ||
    typeof manifest.files !== "object" ||
    manifest.files === null
  ) {
    throw failure(`identity manifest ${manifestPath} is not a ${manifestFormat} manifest`, recreate);
  }
  const path = (key: FileKey): string => {
    const name = manifest.files[key];
    if (typeof name !== "string" || name === "") {
      throw failure(`identity manifest ${manifestPath} names no file for ${key}`, recreate);
    }
    return join(dir, name);
  };
  const fix = `restore the file, or ${recreate}`;
  const pair = (certKey: FileKey, keyKey: FileKey, what: string): { pair: CertifiedKey; cert: X509Certificate; key: KeyObject } => {
    const certFile = path(certKey);
    const keyFile = path(keyKey);
    const certPem = readText(certFile, `${what} certificate`, fix);
    const keyPem = readText(keyFile, `${what} key`, fix);
    const cert = parseCert(certFile, certPem, `${what} certificate`, fix);
    const key = parseKey(keyFile, keyPem, `${what} key`, fix);
    let matches = false;
    try {
      matches = cert.checkPrivateKey(key);
    } catch {
      matches = false;
    }
    if (!matches) {
      throw failure(`${what} certificate ${certFile} does not match its key ${keyFile}`, `restore the matching pair, or ${recreate}`);
    }
    return { pair: { certPem, keyPem }, cert, key };
  };
  for (const key of requiredFiles) path(key);
  const caFile = path("caCert");
  const caCertPem = readText(caFile, "CA certificate", fix);
  parseCert(caFile, caCertPem, "CA certificate", fix);
  const identity = pair("identityCert", "identityKey", "identity");
  const tlsServer = pair("tlsServerCert", "tlsServerKey", "TLS server");
  const tlsClient = pair("tlsClientCert", "tlsClientKey", "TLS client");
  let crypto: X509CryptoService;
  try {
    crypto = new X509CryptoService({
      mspId: manifest.mspId,
      certificate: identity.pair.certPem,
      privateKey: identity.key,
      trustedRoots: { [manifest.mspId]: [caCertPem] },
    });
  } catch (e) {
    throw failure(`identity in ${dirArg} is unusable: ${(e as Error).message}`, recreate, { cause: e });
  }
  return {
    mspId: manifest.mspId,
    pkiId: pkiIdHex(crypto.pkiId),
    subject: subjectLine(identity.cert),
    caCertPem,
    identity: identity.pair,
    tlsServer: tlsServer.pair,
    tlsClient: tlsClient.pair,
    dir,
  };
}

/** Turns generated material into a {@link PeerIdentityFiles} (ephemeral, or before writing it). */
export function identityOf(material: PeerMaterial, dir?: string): PeerIdentityFiles {
  const crypto = new X509CryptoService({
    mspId: material.mspId,
    certificate: material.identity.certPem,
    privateKey: material.identity.keyPem,
    trustedRoots: { [material.mspId]: [material.ca.certPem] },
  });
  return {
    mspId: material.mspId,
    pkiId: pkiIdHex(crypto.pkiId),
    subject: subjectLine(new X509Certificate(material.identity.certPem)),
    caCertPem: material.ca.certPem,
    identity: material.identity,
    tlsServer: material.tlsServer,
    tlsClient: material.tlsClient,
    dir,
  };
}

/** MSP ID of the ephemeral development identity. */
export const devMspId = "DevMSP";

/** An in-memory development identity with its own throwaway CA (nothing written to disk). */
export function ephemeralIdentity(): PeerIdentityFiles {
  const material = createPeerMaterial({ mspId: devMspId, commonName: `dev-${randomBytes(3).toString("hex")}.devmsp` });
  return identityOf(material);
}

/**
 * Loads the CA of `--ca DIR`: the directory of an earlier `init` that created
 * its CA (its manifest names `caKey`), or any directory holding `ca-cert.pem`
 * and `ca-key.pem`.
 */
export function loadCaDir(dirArg: string): CertificateAuthority {
  const dir = resolve(dirArg);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw failure(`--ca ${dirArg} is not a directory`, "pass the --out directory of an earlier 'gossip-connect init' that created a CA");
  }
  let certName: string = defaultFiles.caCert;
  let keyName: string = defaultFiles.caKey;
  const manifestPath = join(dir, manifestName);
  if (existsSync(manifestPath)) {
    try {
      const m = JSON.parse(readFileSync(manifestPath, "utf8")) as IdentityManifest;
      if (typeof m.files?.caCert === "string") certName = m.files.caCert;
      if (typeof m.files?.caKey !== "string") {
        throw failure(
          `--ca ${dirArg} holds no CA key (its CA was reused from another directory)`,
          "pass the directory of the 'init' that created the CA (the one with ca-key.pem)",
        );
      }
      keyName = m.files.caKey;
    } catch (e) {
      if (e instanceof CliError) throw e;
      throw failure(`${manifestPath} is not valid JSON (${(e as Error).message})`, "pass a directory written by 'gossip-connect init'", {
        cause: e,
      });
    }
  }
  const fix = "pass the --out directory of an earlier 'gossip-connect init' that created a CA";
  const certFile = join(dir, certName);
  const keyFile = join(dir, keyName);
  const certPem = readText(certFile, "CA certificate", fix);
  const keyPem = readText(keyFile, "CA key", fix);
  const cert = parseCert(certFile, certPem, "CA certificate", fix);
  parseKey(keyFile, keyPem, "CA key", fix);
  if (!cert.ca) throw failure(`${certFile} is not a CA certificate`, fix);
  try {
    return loadCa(certPem, keyPem);
  } catch (e) {
    throw failure(`CA certificate ${certFile} does not match its key ${keyFile}`, "restore the matching pair", { cause: e });
  }
}

/**
 * Writes an identity directory (creating it). Refuses a directory that
 * already holds a manifest or any of the files.
 */
export function writeIdentity(dirArg: string, material: PeerMaterial, options: { writeCaKey: boolean }): IdentityManifest {
  const dir = resolve(dirArg);
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw failure(`--out ${dirArg} exists and is not a directory`, "choose another --out");
  }
  const files: Partial<Record<FileKey, string>> = { ...defaultFiles };
  if (!options.writeCaKey) delete files.caKey;
  for (const name of [manifestName, ...Object.values(files)]) {
    if (existsSync(join(dir, name))) {
      throw failure(`${join(dirArg, name)} already exists`, "choose another --out directory, or delete the old identity first");
    }
  }
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw failure(
      `cannot create --out ${dirArg} (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      "choose a writable --out directory",
      { cause: e },
    );
  }
  const id = identityOf(material);
  const contents: Record<FileKey, string> = {
    caCert: material.ca.certPem,
    caKey: material.ca.keyPem,
    identityCert: material.identity.certPem,
    identityKey: material.identity.keyPem,
    tlsServerCert: material.tlsServer.certPem,
    tlsServerKey: material.tlsServer.keyPem,
    tlsClientCert: material.tlsClient.certPem,
    tlsClientKey: material.tlsClient.keyPem,
  };
  const manifest: IdentityManifest = { format: manifestFormat, mspId: material.mspId, pkiId: id.pkiId, subject: id.subject, files };
  try {
    for (const [key, name] of Object.entries(files) as [FileKey, string][]) {
      writeFileSync(join(dir, name), contents[key], { mode: key.endsWith("Key") ? 0o600 : 0o644, flag: "wx" });
    }
    writeFileSync(join(dir, manifestName), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o644, flag: "wx" });
  } catch (e) {
    throw failure(
      `cannot write into --out ${dirArg} (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      "choose a writable --out directory",
      { cause: e },
    );
  }
  return manifest;
}

/** Creates a CA for `mspId`, as `init` does without `--ca`. */
export function newCa(mspId: string): CertificateAuthority {
  return createCa({ commonName: `ca.${mspId.toLowerCase()}`, organization: mspId });
}

/**
 * Reads `--trust-ca` entries: `FILE` (the MSP ID is the CA certificate's
 * organization, O=) or `MSPID=FILE`. A file may hold several certificates.
 */
export function loadTrust(entries: readonly string[]): TrustedCa[] {
  const out: TrustedCa[] = [];
  for (const entry of entries) {
    const eq = entry.indexOf("=");
    const explicitMsp = eq > 0 && !entry.slice(0, eq).includes("/") ? entry.slice(0, eq) : undefined;
    const file = explicitMsp !== undefined ? entry.slice(eq + 1) : entry;
    const fix = "pass a PEM CA certificate, such as the ca-cert.pem of a 'gossip-connect init' directory";
    const text = readText(file, "--trust-ca file", fix);
    const pems = pemCertificates(text);
    if (pems.length === 0) throw failure(`--trust-ca file ${file} holds no PEM certificate`, fix);
    for (const pem of pems) {
      const cert = parseCert(file, pem, "--trust-ca file", fix);
      if (!cert.ca) throw failure(`--trust-ca file ${file} holds a certificate that is not a CA (${subjectLine(cert)})`, fix);
      const mspId = explicitMsp ?? organizationOf(cert);
      if (mspId === undefined) {
        throw failure(
          `--trust-ca file ${file}: the CA certificate names no organization (O=), so its MSP ID is unknown`,
          `write --trust-ca MSPID=${file}`,
        );
      }
      out.push({ mspId, certPem: pem, file });
    }
  }
  return out;
}

function organizationOf(cert: X509Certificate): string | undefined {
  for (const line of cert.subject.split("\n")) {
    if (line.startsWith("O=")) return line.slice(2);
  }
  return undefined;
}

/** How a peer authenticates and what it trusts, as the server and the dialer want it. */
export interface PeerSecurity {
  readonly identity: X509CryptoOptions;
  /** TLS of the server; undefined with --no-tls. */
  readonly serverTls: ServerTlsOptions | undefined;
  /** TLS of outbound connections; undefined with --no-tls. */
  readonly clientTls: ClientTlsOptions | undefined;
}

/** Combines our identity and `--trust-ca` into server/client options (our own CA always trusted). */
export function peerSecurity(id: PeerIdentityFiles, trust: readonly TrustedCa[], tls: boolean): PeerSecurity {
  const roots: Record<string, string[]> = { [id.mspId]: [id.caCertPem] };
  for (const t of trust) {
    const pems = roots[t.mspId] ?? [];
    pems.push(t.certPem);
    roots[t.mspId] = pems;
  }
  const cas = [...new Set([id.caCertPem, ...trust.map((t) => t.certPem)])];
  return {
    identity: { mspId: id.mspId, certificate: id.identity.certPem, privateKey: id.identity.keyPem, trustedRoots: roots },
    serverTls: tls ? { cert: id.tlsServer.certPem, key: id.tlsServer.keyPem, ca: cas } : undefined,
    clientTls: tls ? { ca: cas, cert: id.tlsClient.certPem, key: id.tlsClient.keyPem } : undefined,
  };
}
