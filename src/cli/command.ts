/** The shape every `gossip-connect` command has. */

/** One command of the CLI. */
export interface Command {
  /** The word that selects it (`serve`). */
  readonly name: string;
  /** The full `--help` text. */
  readonly usage: string;
  /** How a failure is printed with --json: as an `event` line (long-running commands) or a `result` object. */
  readonly jsonErrorKey: "event" | "result";
  /**
   * Runs with the arguments after the command word; resolves with the exit
   * code. Throws a CliError for a failure to report.
   */
  run(argv: readonly string[]): Promise<number>;
}

/** Help text of the flags every dialing command shares. */
export const dialFlagsHelp = `  --trust-ca FILE,...   CA certificates (PEM) trusted for TLS and for identities; repeatable.
                        FILE's MSP ID is its organization (O=); write MSPID=FILE to set it.
  --no-tls              cleartext HTTP/2 (h2c) instead of TLS
  --json                print one JSON object per result on stdout`;
