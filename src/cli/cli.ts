/**
 * The `gossip-connect` command line: picks the command, runs it, and turns
 * every failure into one stderr line and an exit code (0 success, 1 failure,
 * 2 usage).
 */
import { version } from "../version.js";
import type { Command } from "./command.js";
import { CliError, ExitCode, errorLine, explain } from "./errors.js";
import { jsonLine } from "./output.js";

/** A command as the dispatcher knows it: loaded only when run, so `--help` and usage errors start fast. */
interface CommandEntry {
  readonly name: string;
  readonly summary: string;
  readonly load: () => Promise<Command>;
}

/** Every command, in the order `--help` lists them. */
export const commands: readonly CommandEntry[] = [
  {
    name: "mesh",
    summary: "run a live local mesh of gossip peers on loopback (npm start)",
    load: async () => (await import("./commands/mesh.js")).meshCommand,
  },
  {
    name: "init",
    summary: "create a peer identity (CA, enrollment and TLS certificates) in a directory",
    load: async () => (await import("./commands/init.js")).initCommand,
  },
  {
    name: "serve",
    summary: "run one gossip peer (Fastify HTTP/2 server with the plugin)",
    load: async () => (await import("./commands/serve.js")).serveCommand,
  },
  {
    name: "ping",
    summary: "call Gossip.Ping on a peer (no handshake)",
    load: async () => (await import("./commands/ping.js")).pingCommand,
  },
  {
    name: "probe",
    summary: "check that a peer is alive (dial + Ping, Comm.probe)",
    load: async () => (await import("./commands/probe.js")).probeCommand,
  },
  {
    name: "handshake",
    summary: "authenticate a peer (Comm.handshake) and print its PKI-ID, MSP ID and subject",
    load: async () => (await import("./commands/handshake.js")).handshakeCommand,
  },
  {
    name: "send",
    summary: "send data messages to a peer over an authenticated connection, optionally acknowledged",
    load: async () => (await import("./commands/send.js")).sendCommand,
  },
  {
    name: "members",
    summary: "ask a peer for its membership view (MembershipRequest) and print its members",
    load: async () => (await import("./commands/members.js")).membersCommand,
  },
];

function globalUsage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return `gossip-connect ${version}: Hyperledger Fabric's gossip comm layer on Connect-RPC and Fastify (HTTP/2)

Usage: gossip-connect COMMAND [OPTIONS]

Commands:
${commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join("\n")}

Run 'gossip-connect COMMAND --help' for a command's options, 'gossip-connect --version' for the version.
Exit codes: 0 success, 1 failure, 2 usage.

Quick start:
  gossip-connect mesh                          # a live 4-peer mesh on loopback (npm start)
  gossip-connect serve --listen 127.0.0.1:7051 --no-tls
  gossip-connect ping http://127.0.0.1:7051`;
}

/** Runs the CLI with `argv` (without node and the script); resolves with the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(`${globalUsage()}\n`);
    return ExitCode.Usage;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    const target = name === "help" && rest[0] !== undefined ? commands.find((c) => c.name === rest[0]) : undefined;
    if (name === "help" && rest[0] !== undefined && target === undefined) return unknownCommand(rest[0]);
    process.stdout.write(`${target ? (await target.load()).usage : globalUsage()}\n`);
    return ExitCode.Ok;
  }
  if (name === "--version" || name === "-v" || name === "version") {
    process.stdout.write(`${version}\n`);
    return ExitCode.Ok;
  }
  const entry = commands.find((c) => c.name === name);
  if (entry === undefined) return unknownCommand(name);
  const command = await entry.load();
  try {
    return await command.run(rest);
  } catch (e) {
    const error = e instanceof CliError ? e : explain(e);
    if (rest.includes("--json")) {
      process.stdout.write(
        `${jsonLine({ [command.jsonErrorKey]: "error", ...(command.jsonErrorKey === "event" ? { time: new Date().toISOString() } : {}), code: error.code ?? (error.exitCode === ExitCode.Usage ? "usage" : "failure"), message: error.problem, fix: error.fix, exitCode: error.exitCode })}\n`,
      );
    }
    process.stderr.write(`${errorLine(command.name, error)}\n`);
    return error.exitCode;
  }
}

function unknownCommand(name: string): number {
  const e = new CliError(
    ExitCode.Usage,
    `unknown command ${JSON.stringify(name)}`,
    `use one of ${commands.map((c) => c.name).join(", ")}; run 'gossip-connect --help'`,
  );
  process.stderr.write(`${errorLine(undefined, e)}\n`);
  return e.exitCode;
}
