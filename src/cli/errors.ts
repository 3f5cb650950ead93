/**
 * Errors of the command line: every failure a command reports is a
 * {@link CliError} carrying its exit code, the problem and the fix, printed as
 * one line on stderr. Library failures ({@link GossipError}) are translated by
 * their `code`, never by their message text.
 */
import { authenticationCodes, ErrorCode, type GossipError, isGossipError } from "../core/errors.js";

/** Exit codes of every command. */
export const ExitCode = {
  /** The command did what was asked. */
  Ok: 0,
  /** The command ran and failed (unreachable peer, missing ack, unusable files, port in use...). */
  Failure: 1,
  /** The command line is wrong (unknown flag, missing or malformed value). */
  Usage: 2,
} as const;

/** An exit code of the CLI. */
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** A failure to report on one line: what went wrong, and how to fix it. */
export class CliError extends Error {
  override readonly name = "CliError";

  constructor(
    /** Exit code: 1 (failure) or 2 (usage). */
    readonly exitCode: ExitCodeValue,
    /** The problem, naming the thing at fault. */
    readonly problem: string,
    /** What to do about it. */
    readonly fix: string,
    /** The library's code, when a GossipError caused it. */
    readonly code?: string,
    options?: { cause?: unknown },
  ) {
    super(`${problem}; fix: ${fix}`, options);
  }
}

/** A usage error (exit 2). */
export function usageError(problem: string, fix: string): CliError {
  return new CliError(ExitCode.Usage, problem, fix);
}

/** A failure (exit 1). */
export function failure(problem: string, fix: string, options?: { code?: string; cause?: unknown }): CliError {
  return new CliError(ExitCode.Failure, problem, fix, options?.code, { cause: options?.cause });
}

/** What the CLI was doing when a library error happened, for the fix hint. */
export interface ErrorContext {
  /** The `host:port` dialed, if any. */
  readonly endpoint?: string;
  /** The dial was cleartext (`--no-tls`). */
  readonly noTls?: boolean;
  /** Ack timeout in ms (send --ack). */
  readonly timeoutMs?: number;
  /** How to switch between TLS and h2c for this command, when not the --no-tls flag. */
  readonly tlsSwitch?: string;
}

/**
 * Translates a library error into a one-line problem and fix, by its
 * {@link ErrorCode}. Anything that is not a GossipError is reported as an
 * internal failure with its message.
 */
export function explain(reason: unknown, ctx: ErrorContext = {}): CliError {
  if (reason instanceof CliError) return reason;
  if (!isGossipError(reason)) {
    const message = reason instanceof Error ? reason.message : String(reason);
    return failure(`unexpected error: ${message}`, "report this as a bug with the command you ran", { cause: reason });
  }
  const e: GossipError = reason;
  const at = ctx.endpoint ?? "the remote peer";
  const tlsSwitch =
    ctx.tlsSwitch ??
    (ctx.noTls ? "if the peer serves TLS, drop --no-tls" : "if the peer serves cleartext h2c (serve --no-tls), add --no-tls");
  const f = (problem: string, fix: string) => failure(problem, fix, { code: e.code, cause: e });
  switch (e.code) {
    // These messages already name the stage and the endpoint (client/node-error.ts).
    case ErrorCode.DialFailed:
      return f(
        // Without a platform cause the client's text ends in "undefined" (the connection closed
        // before HTTP/2 was set up, e.g. h2c to a TLS port): say that instead.
        e.cause === undefined ? `cannot connect to ${at}: the connection closed before HTTP/2 was set up` : e.message,
        ctx.noTls
          ? `check the address and that a peer listens there; ${tlsSwitch}`
          : `check the address, or start a peer there with 'gossip-connect serve --listen ${at}'`,
      );
    case ErrorCode.DialTimeout:
      return f(e.message, `check the address and that no firewall drops the connection; ${tlsSwitch}`);
    case ErrorCode.TlsFailed:
      return f(e.message, `pass the CA that issued the peer's TLS certificate with --trust-ca FILE; ${tlsSwitch}`);
    case ErrorCode.PingFailed:
      return f(e.message, `check that ${at} is a gossip peer; ${tlsSwitch}`);
    case ErrorCode.NoTlsCertificate:
      return f(
        `${at} presented no TLS certificate: ${e.message}`,
        "give the peer a TLS certificate, or dial it with --no-tls if it serves h2c",
      );
    case ErrorCode.HandshakeTimeout:
      return f(
        `${at} did not complete the gossip handshake in time: ${e.message}`,
        `the peer probably refused our identity: make it trust our CA (its --trust-ca), and check its log`,
      );
    case ErrorCode.InvalidIdentity:
      return f(
        `the identity of ${at} is not trusted: ${e.message}`,
        "pass the CA of the peer's organization with --trust-ca FILE (or MSPID=FILE)",
      );
    case ErrorCode.PkiIdMismatch:
    case ErrorCode.BadSignature:
    case ErrorCode.CertHashMismatch:
    case ErrorCode.MissingPkiId:
    case ErrorCode.UnexpectedMessage:
      return f(
        `${at} failed the gossip handshake (${e.code}): ${e.message}`,
        "the remote is not a conforming gossip peer or its identity files are inconsistent; re-create them with 'gossip-connect init'",
      );
    case ErrorCode.UnexpectedPeer:
      return f(
        `${at} answered with another PKI-ID than --pki-id: ${e.message}`,
        "check --pki-id (run 'gossip-connect handshake' to see the PKI-ID it has), or omit --pki-id",
      );
    case ErrorCode.AckTimeout:
      return f(
        `no acknowledgement from ${at}${ctx.timeoutMs !== undefined ? ` within ${ctx.timeoutMs} ms` : ""}`,
        "serve the remote with --auto-ack (or make its subscriber call ack()), or raise --timeout",
      );
    case ErrorCode.Nack:
      return f(`${at} acknowledged with an error: ${e.message}`, "see the remote peer's log for why it refused the message");
    case ErrorCode.RateLimited:
      return f(`${at} refused the connection: ${e.message}`, "wait a second and retry; the peer limits handshakes per address");
    case ErrorCode.MessageTooLarge:
      return f(`message too large: ${e.message}`, "send less --data");
    case ErrorCode.Remote:
    case ErrorCode.Canceled:
    case ErrorCode.Closed:
      return f(
        `the connection to ${at} closed (${e.code}): ${e.message}`,
        e.remoteCode === undefined || authenticationCodes.has(e.remoteCode)
          ? "the peer probably refused our identity: make it trust our CA (its --trust-ca), and check its log"
          : "the peer ended the connection; check its log",
      );
    case ErrorCode.Stopping:
      return f(`interrupted: ${e.message}`, "run the command again");
    default:
      return f(`${e.code}: ${e.message}`, "check the peer's log; report a bug if it persists");
  }
}

/** The one stderr line of a failure: `gossip-connect CMD: problem; fix: fix`. */
export function errorLine(command: string | undefined, e: CliError): string {
  return `gossip-connect${command ? ` ${command}` : ""}: ${e.problem}; fix: ${e.fix}`;
}
