/**
 * Entry point of the `gossip-connect` binary (bin/gossip-connect.js runs
 * this file, compiled or through tsx). Exits with the command's code once it
 * is done: long-running commands (serve, mesh) resolve only after a signal or
 * their --duration, and have closed everything they opened by then.
 */
import { runCli } from "./cli.js";

const code = await runCli(process.argv.slice(2));
process.exit(code);
