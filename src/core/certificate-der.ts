/**
 * A DER X.509 certificate's TBSCertificate fields, read where they lie, for
 * what Node's `X509Certificate` hands out only at a cost: the
 * SubjectPublicKeyInfo (exporting it from the parsed key costs ~150 us, once
 * per new identity on every handshake and identity check) and the subject
 * Name (which Node gives only as text).
 *
 * Bounds-checked: malformed or unexpected DER gives `undefined`, never a
 * throw or a read past its end. Callers read certificates OpenSSL already
 * parsed and fall back to it on `undefined`.
 */

/** One DER element: its tag, and where its header, body and end lie. */
interface Element {
  readonly tag: number;
  readonly start: number;
  readonly body: number;
  readonly end: number;
}

/** The element at `at`, which must end by `limit`; definite lengths of up to 3 bytes (16 MiB). */
function element(der: Uint8Array, at: number, limit: number): Element | undefined {
  if (at + 2 > limit) return undefined;
  const tag = der[at] as number;
  // High tag numbers do not occur among a TBSCertificate's fields.
  if ((tag & 0x1f) === 0x1f) return undefined;
  const first = der[at + 1] as number;
  let length = first;
  let body = at + 2;
  if (first >= 0x80) {
    const n = first & 0x7f;
    // 0x80 is BER's indefinite length, which DER does not allow.
    if (n === 0 || n > 3 || body + n > limit) return undefined;
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + (der[body + i] as number);
    body += n;
  }
  const end = body + length;
  return end > limit ? undefined : { tag, start: at, body, end };
}

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const OID = 0x06;
/** `[0] EXPLICIT Version`, absent from v1 certificates. */
const VERSION = 0xa0;

/**
 * TBSCertificate's fields from `serialNumber` on: serialNumber, signature,
 * issuer, validity, subject, subjectPublicKeyInfo (the later ones are not read).
 */
function tbsFields(der: Uint8Array): Element[] | undefined {
  const certificate = element(der, 0, der.length);
  if (certificate?.tag !== SEQUENCE) return undefined;
  const tbs = element(der, certificate.body, certificate.end);
  if (tbs?.tag !== SEQUENCE) return undefined;
  const fields: Element[] = [];
  for (let at = tbs.body; at < tbs.end && fields.length < 6; ) {
    const e = element(der, at, tbs.end);
    if (e === undefined) return undefined;
    if (!(fields.length === 0 && e.tag === VERSION)) fields.push(e);
    at = e.end;
  }
  if (fields[0]?.tag !== INTEGER) return undefined;
  for (let i = 1; i <= 5; i++) if (fields[i]?.tag !== SEQUENCE) return undefined;
  return fields;
}

/** The subjectPublicKeyInfo SEQUENCE of a DER certificate, header included, as a view of `der`. */
export function spkiOf(der: Uint8Array): Uint8Array | undefined {
  const field = tbsFields(der)?.[5];
  return field === undefined ? undefined : der.subarray(field.start, field.end);
}

/** The subject Name SEQUENCE of a DER certificate, header included, as a view of `der`. */
export function subjectNameOf(der: Uint8Array): Uint8Array | undefined {
  const field = tbsFields(der)?.[4];
  return field === undefined ? undefined : der.subarray(field.start, field.end);
}

/** DER of the OIDs of an EC key's SubjectPublicKeyInfo: id-ecPublicKey, then the named curves, by Node's curve name. */
const ecPublicKey = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const namedCurves: ReadonlyArray<readonly [string, readonly number[]]> = [
  ["prime256v1", [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]],
  ["secp384r1", [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]],
];

function holds(der: Uint8Array, e: Element | undefined, bytes: readonly number[]): boolean {
  if (e === undefined || e.end - e.start !== bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) if (der[e.start + i] !== bytes[i]) return false;
  return true;
}

/**
 * The named curve of an EC SubjectPublicKeyInfo (`prime256v1` or
 * `secp384r1`, Node's names), read from its AlgorithmIdentifier; undefined
 * for any other key or curve.
 */
export function namedCurveOf(spki: Uint8Array): string | undefined {
  const outer = element(spki, 0, spki.length);
  if (outer?.tag !== SEQUENCE) return undefined;
  const algorithm = element(spki, outer.body, outer.end);
  if (algorithm?.tag !== SEQUENCE) return undefined;
  const kind = element(spki, algorithm.body, algorithm.end);
  if (kind?.tag !== OID || !holds(spki, kind, ecPublicKey)) return undefined;
  const curve = element(spki, kind.end, algorithm.end);
  if (curve?.tag !== OID || curve.end !== algorithm.end) return undefined;
  return namedCurves.find(([, bytes]) => holds(spki, curve, bytes))?.[0];
}
