/**
 * `gossip-connect/membership`: Fabric's gossip discovery (the membership
 * view) on a {@link Comm}: alive messages, bootstrap, sync, expiration,
 * reconnection, identity pull and the disclosure policy, Fabric-exact.
 *
 * @packageDocumentation
 */

export {
  aliveMessage,
  internalEndpointOf,
  type ParsedAlive,
  parseAlive,
  signAlive,
  validateAlive,
  withoutSecret,
} from "./alive-message.js";
export { AliveStore } from "./alive-store.js";
export {
  type MembershipConfig,
  type MembershipOptions,
  resolveMembershipConfig,
} from "./config.js";
export type { ConnectOptions } from "./connector.js";
export {
  type Disclosure,
  disclosurePolicy,
  type PeerFacts,
} from "./disclosure.js";
export { IdentityMapper } from "./identity-mapper.js";
export { declineMembershipEnvelope, isMembershipMessage } from "./inbox.js";
export {
  Membership,
  type MembershipInit,
  type MembershipStats,
} from "./membership.js";
export {
  type DuplicateKind,
  type MembershipMetrics,
  noopMembershipMetrics,
  type RefusedKind,
} from "./metrics.js";
export { illegalTagReason } from "./tags.js";
export {
  compareTimestamps,
  isNewer,
  type Timestamp,
  timestampString,
} from "./timestamp.js";
export type { Member, MembershipEvent, MembershipEventType } from "./view.js";
