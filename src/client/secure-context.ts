import { createSecureContext, type SecureContext } from "node:tls";

/**
 * How many distinct sets of TLS material keep a context. A process dials
 * with one set (its peer's), or a few after a certificate rotation.
 */
const maxContexts = 16;

const contexts = new Map<string, SecureContext>();

/**
 * The TLS context for dialing with this CA list, certificate and key: built
 * once per distinct material and shared by every connection that dials with
 * it, as Node's `https.Agent` does. Building one costs ~1.7 ms of CPU (with
 * a `ca` list Node copies its root store into each new context), which a
 * dial paid every time, and each connection kept its own copy.
 *
 * Keyed by the material's content, not by the options object, so that new
 * material (a rotated certificate) is used from the next dial on.
 */
export function clientSecureContext(ca: readonly string[], cert: string | undefined, key: string | undefined): SecureContext {
  const id = `${ca.join("\0")}\u0001${cert ?? ""}\u0001${key ?? ""}`;
  let ctx = contexts.get(id);
  if (ctx !== undefined) {
    // Most recently used last: the oldest is the one evicted.
    contexts.delete(id);
  } else {
    ctx = createSecureContext({ ca: [...ca], ...(cert !== undefined ? { cert } : {}), ...(key !== undefined ? { key } : {}) });
    if (contexts.size >= maxContexts) contexts.delete(contexts.keys().next().value as string);
  }
  contexts.set(id, ctx);
  return ctx;
}
