/**
 * The plugin's check for option names it does not know. TypeScript catches a
 * misspelt option; JavaScript callers and options read from configuration
 * files do not, and a misspelt one (`metrix`, `membership.bootstrapPeer`) was
 * ignored without a word, leaving the default in force.
 *
 * @private Internal code, not part of the public API.
 */
import { defaultCommConfig } from "../core/config.js";
import { http2OptionKeys } from "../grpc/config.js";
import { resolveMembershipConfig } from "../membership/config.js";
import type { GossipPluginOptions } from "./plugin.js";

/**
 * The plugin's own options (a key per option of {@link GossipPluginOptions},
 * so that a new one cannot be left out), and the options Fastify's
 * `register` takes for every plugin.
 */
const pluginOptions: Record<keyof GossipPluginOptions, true> = {
  comm: true,
  crypto: true,
  identity: true,
  clientTls: true,
  options: true,
  reflection: true,
  metrics: true,
  logger: true,
  membership: true,
};
const pluginKeys = [...Object.keys(pluginOptions), "prefix", "logLevel", "logSerializers"];
const peerOptionKeys = [...Object.keys(defaultCommConfig), ...http2OptionKeys];
const membershipKeys = Object.keys(resolveMembershipConfig({ internalEndpoint: "127.0.0.1:7051" }));

/**
 * Throws a `TypeError` naming the first option of `opts` (the plugin's
 * options), of `opts.options` or of `opts.membership` that the plugin does
 * not know, with the known name it is closest to when there is one.
 */
export function refuseUnknownOptions(opts: object): void {
  check("", opts, pluginKeys);
  const o = opts as { options?: unknown; membership?: unknown };
  if (isObject(o.options)) check("options.", o.options, peerOptionKeys);
  if (isObject(o.membership)) check("membership.", o.membership, membershipKeys);
}

function isObject(v: unknown): v is object {
  return typeof v === "object" && v !== null;
}

function check(prefix: string, given: object, known: readonly string[]): void {
  for (const key of Object.keys(given)) {
    if (known.includes(key)) continue;
    const near = nearest(key, known);
    throw new TypeError(`gossip-connect: unknown option ${prefix}${key}${near === undefined ? "" : ` (did you mean ${prefix}${near}?)`}`);
  }
}

/** The known name within a third of `key`'s length in edits (at least 2), if any. */
function nearest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const k of known) {
    const d = distance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}
