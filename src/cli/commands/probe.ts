/** `gossip-connect probe HOST:PORT`: the comm's shallow probe (dial + Ping, no handshake). */
import { performance } from "node:perf_hooks";
import { parseCommandLine, parseHostPort } from "../args.js";
import { type Command, dialFlagsHelp } from "../command.js";
import { dialComm, dialOptions, dialSetup } from "../dial.js";
import { explain } from "../errors.js";
import { processOutput } from "../output.js";

const usage = `Usage: gossip-connect probe HOST:PORT [--identity DIR] [--trust-ca FILE,...] [--no-tls] [--json]

Fabric's shallow liveness check (Comm.probe): a fresh connection to
HOST:PORT and one Ping within the dial and connection timeouts (3 s + 2 s),
no gossip handshake.

Options:
  --identity DIR        present the TLS client certificate of this identity; optional
${dialFlagsHelp}
  -h, --help            this help

Exit codes: 0 the peer is alive, 1 it is not (or TLS refused), 2 usage.

Example:
  gossip-connect probe 127.0.0.1:7051 --trust-ca ./peer1/ca-cert.pem`;

const options = { ...dialOptions, identity: { type: "string" } } as const;

export const probeCommand: Command = {
  name: "probe",
  usage,
  jsonErrorKey: "result",
  async run(argv) {
    const { values: v, positionals, help } = parseCommandLine("probe", argv, options, { min: 1, max: 1, names: "HOST:PORT" });
    if (help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    const { endpoint } = parseHostPort("HOST:PORT", positionals[0] as string);
    const setup = dialSetup(v);
    const comm = dialComm(setup);
    const started = performance.now();
    try {
      await comm.probe({ endpoint });
    } catch (e) {
      throw explain(e, { endpoint, noTls: !setup.tls });
    } finally {
      await comm.stop();
    }
    processOutput(v.json).record(
      "alive",
      { endpoint, tls: setup.tls, ms: Math.round((performance.now() - started) * 100) / 100 },
      "result",
    );
    return 0;
  },
};
