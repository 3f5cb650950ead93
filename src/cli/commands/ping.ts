/** `gossip-connect ping URL`: one Gossip.Ping over gRPC, through the client's GossipClient. */
import { X509Certificate } from "node:crypto";
import { performance } from "node:perf_hooks";
import { GossipClient } from "../../client/gossip-client.js";
import { parseCommandLine, parseHostPort, parseInteger } from "../args.js";
import { type Command, dialFlagsHelp } from "../command.js";
import { dialOptions, dialSetup } from "../dial.js";
import { explain, usageError } from "../errors.js";
import { subjectLine } from "../identity.js";
import { processOutput } from "../output.js";

const usage = `Usage: gossip-connect ping URL [--trust-ca FILE,...] [--identity DIR] [--no-tls] [--timeout MS] [--json]

Dials URL and calls Gossip.Ping over gRPC (no gossip handshake), then
closes the connection. Prints the round-trip time and, over TLS, the
subject of the server's certificate.

URL is http://HOST:PORT (cleartext h2c), https://HOST:PORT (TLS), or
HOST:PORT (TLS, or h2c with --no-tls). A path /gossip.Gossip/Ping may follow.

Options:
  --identity DIR        present the TLS client certificate of this identity
                        (and trust its CA); optional
  --timeout MS          time allowed for the dial and for the Ping, each
                        (default 3000 and 2000, Fabric's dial and conn timeouts)
${dialFlagsHelp}
  -h, --help            this help

Exit codes: 0 the peer answered, 1 it did not (unreachable, TLS refused), 2 usage.

Example:
  gossip-connect ping http://127.0.0.1:7051
  gossip-connect ping https://127.0.0.1:7051 --trust-ca ./peer1/ca-cert.pem`;

const options = { ...dialOptions, identity: { type: "string" }, timeout: { type: "string" } } as const;

/** Parses ping's URL argument into an endpoint and whether to use TLS. */
function parseTarget(url: string, noTls: boolean): { endpoint: string; tls: boolean } {
  const m = /^(https?):\/\/([^/]+)(\/.*)?$/.exec(url);
  if (!m) {
    // HOST:PORT may carry the Ping path too (a curl URL without its scheme).
    const bare = /^([^/]+)(?:\/|\/gossip\.Gossip\/Ping)?$/.exec(url);
    return { endpoint: parseHostPort("URL", bare?.[1] ?? url).endpoint, tls: !noTls };
  }
  const [, scheme, authority = "", path] = m;
  if (path !== undefined && path !== "/" && path !== "/gossip.Gossip/Ping") {
    throw usageError(`URL path ${path} is not Gossip.Ping`, "write the URL without a path, e.g. http://127.0.0.1:7051");
  }
  if (scheme === "https" && noTls) throw usageError("--no-tls contradicts an https:// URL", "use http:// for h2c, or drop --no-tls");
  return { endpoint: parseHostPort("URL", authority).endpoint, tls: scheme === "https" };
}

export const pingCommand: Command = {
  name: "ping",
  usage,
  jsonErrorKey: "result",
  async run(argv) {
    const { values: v, positionals, help } = parseCommandLine("ping", argv, options, { min: 1, max: 1, names: "URL" });
    if (help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    const url = positionals[0] as string;
    const { endpoint, tls } = parseTarget(url, v["no-tls"]);
    const timeoutMs = v.timeout !== undefined ? parseInteger("--timeout", v.timeout, 1, 600_000, 3000) : undefined;
    const setup = dialSetup({ ...v, "no-tls": !tls });
    const out = processOutput(v.json);
    const ctx = {
      endpoint,
      noTls: !tls,
      tlsSwitch: tls ? "if the peer serves cleartext h2c (serve --no-tls), use http://" : "if the peer serves TLS, use https://",
    };
    const started = performance.now();
    let client: GossipClient;
    try {
      client = await GossipClient.connect(endpoint, {
        tls: setup.security.clientTls,
        options: timeoutMs !== undefined ? { dialTimeoutMs: timeoutMs, connTimeoutMs: timeoutMs } : {},
      });
    } catch (e) {
      throw explain(e, ctx);
    }
    try {
      await client.ping(timeoutMs);
    } catch (e) {
      throw explain(e, ctx);
    } finally {
      client.close();
    }
    const rttMs = Math.round((performance.now() - started) * 100) / 100;
    const cert = client.serverCertificate;
    out.record(
      "pong",
      {
        url,
        endpoint,
        tls,
        ms: rttMs,
        serverSubject: cert ? subjectLine(new X509Certificate(cert)) : undefined,
      },
      "result",
    );
    return 0;
  },
};
