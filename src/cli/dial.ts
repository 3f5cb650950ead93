/**
 * What every dialing command shares: the `--trust-ca`, `--no-tls`, `--json`
 * flags, our identity (from `--identity DIR` or ephemeral), and a Comm that
 * dials through the client dialer, built on the public API only.
 */
import { PeerDialer } from "../client/dialer.js";
import { Comm } from "../core/comm.js";
import type { CommOptions } from "../core/config.js";
import type { CryptoService } from "../core/crypto.js";
import { X509CryptoService } from "../core/x509-crypto.js";
import { listOf } from "./args.js";
import { usageError } from "./errors.js";
import { ephemeralIdentity, loadIdentity, loadTrust, type PeerIdentityFiles, type PeerSecurity, peerSecurity } from "./identity.js";
import { cliLogger } from "./logger.js";

/** The flags of every dialing command. */
export const dialOptions = {
  "trust-ca": { type: "string", multiple: true },
  "no-tls": { type: "boolean" },
  json: { type: "boolean" },
} as const;

/** Our side of a dial: identity, trust and TLS. */
export interface DialSetup {
  readonly id: PeerIdentityFiles;
  readonly security: PeerSecurity;
  readonly tls: boolean;
}

/**
 * Loads `--identity DIR` (required when `requiredBy` names the command) or
 * makes an ephemeral identity, and the `--trust-ca` files.
 */
export function dialSetup(
  values: { readonly "trust-ca": readonly string[]; readonly "no-tls": boolean; readonly identity?: string | undefined },
  requiredBy?: string,
): DialSetup {
  if (values.identity === undefined && requiredBy !== undefined) {
    throw usageError(
      "missing --identity DIR",
      `create one with 'gossip-connect init --msp-id Org1MSP --out DIR' and write 'gossip-connect ${requiredBy} ... --identity DIR'`,
    );
  }
  const id = values.identity !== undefined ? loadIdentity(values.identity) : ephemeralIdentity();
  const trust = loadTrust(listOf(values["trust-ca"]));
  const tls = !values["no-tls"];
  return { id, security: peerSecurity(id, trust, tls), tls };
}

/** A Comm for one dialing command (its log level defaults to silent); `crypto` when the command needs it too. */
export function dialComm(
  setup: DialSetup,
  options: CommOptions = {},
  crypto: CryptoService = new X509CryptoService(setup.security.identity),
): Comm {
  return new Comm({
    crypto,
    dialer: new PeerDialer({ tls: setup.security.clientTls, options }),
    options,
    logger: cliLogger("silent", { component: "gossip-connect-cli" }),
  });
}
