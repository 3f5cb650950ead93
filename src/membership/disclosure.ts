/**
 * Fabric's disclosure policy (§3.11): what we tell a remote peer about
 * members, by organization and external endpoints. Pure; lookups injected.
 */
import { decodeEnvelope, encodeEnvelope } from "../core/envelope.js";
import type { Envelope } from "../gen/gossip/message_pb.js";
import { withoutSecret } from "./alive-message.js";

/** What the policy needs to know about a peer. */
export interface PeerFacts {
  /** Its organization, if its identity is known. */
  readonly organization: string | undefined;
  /** Its external endpoint ("" if none or unknown). */
  readonly endpoint: string;
}

/** The policy towards one remote peer. */
export interface Disclosure {
  /** True when the alive message about a peer with `about` facts may be sent to the remote. */
  disclose(about: PeerFacts): boolean;
  /** The envelope as it may be sent to the remote (secret envelope removed for another organization). */
  filter(env: Envelope): Envelope;
  /** {@link filter} of a serialized envelope: the same bytes when nothing is removed. */
  filterFrame(frame: Uint8Array): Uint8Array;
}

/** The policy of a peer of organization `selfOrg` towards `remote`; undefined remote org discloses nothing. */
export function disclosurePolicy(selfOrg: string, remote: PeerFacts): Disclosure {
  const remoteOrg = remote.organization;
  if (remoteOrg === undefined) return { disclose: () => false, filter: (env) => env, filterFrame: (frame) => frame };
  return {
    disclose(about) {
      if (about.organization === undefined) return false;
      if (about.organization === remoteOrg) return true;
      return about.organization === selfOrg && about.endpoint !== "" && remote.endpoint !== "";
    },
    filter: (env) => (remoteOrg === selfOrg ? env : withoutSecret(env)),
    filterFrame(frame) {
      if (remoteOrg === selfOrg) return frame;
      const env = decodeEnvelope(frame);
      return env.secretEnvelope === undefined ? frame : encodeEnvelope(withoutSecret(env));
    },
  };
}
