/**
 * Logs of the CLI: pino, JSON lines on stderr (stdout is for results and
 * events). The level comes from GOSSIP_CONNECT_LOG_LEVEL (trace, debug, info,
 * warn, error, fatal, silent), else the command's default.
 */
import { type Logger as PinoLogger, pino } from "pino";
import { usageError } from "./errors.js";

const levels = new Set(["trace", "debug", "info", "warn", "error", "fatal", "silent"]);

/** Name of the environment variable that sets the log level. */
export const logLevelEnv = "GOSSIP_CONNECT_LOG_LEVEL";

/** A pino logger writing synchronously to stderr. */
export function cliLogger(defaultLevel: string, bindings: Record<string, unknown> = {}): PinoLogger {
  const level = process.env[logLevelEnv] ?? defaultLevel;
  if (!levels.has(level)) {
    throw usageError(`${logLevelEnv}=${level} is not a log level`, `set it to one of ${[...levels].join(", ")}`);
  }
  return pino({ level, base: { pid: process.pid, ...bindings } }, pino.destination({ fd: 2, sync: true }));
}
