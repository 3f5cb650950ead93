/**
 * `gossip-connect/pki`: throwaway CAs and certificates for development,
 * tests and local meshes (ECDSA P-256, pure Node). Not a production CA.
 *
 * @packageDocumentation
 */
export {
  type CertificateAuthority,
  type CertificateSpec,
  type CertifiedKey,
  createCa,
  createPeerMaterial,
  issueCertificate,
  loadCa,
  type PeerMaterial,
} from "./certificates.js";
