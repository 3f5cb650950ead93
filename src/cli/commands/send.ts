/** `gossip-connect send HOST:PORT`: authenticated handshake, data messages, optionally acknowledged. */
import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { Comm, PresumedDeadEvent } from "../../core/comm.js";
import { gossipMessage } from "../../core/envelope.js";
import { ErrorCode, GossipError } from "../../core/errors.js";
import { pkiIdHex, type RemotePeer } from "../../core/identity.js";
import { DataMessageSchema, type GossipMessage, PayloadSchema } from "../../gen/gossip/message_pb.js";
import { maxUint64, parseCommandLine, parseHostPort, parseInteger, parseNonce, parsePkiId } from "../args.js";
import { type Command, dialFlagsHelp } from "../command.js";
import { dialComm, dialOptions, dialSetup } from "../dial.js";
import { errorLine, explain, failure, usageError } from "../errors.js";
import { processOutput } from "../output.js";

const defaultAckTimeoutMs = 3000;
/** How long a plain send waits for the connection and the writes, beyond the dial timeouts. */
const sendDeadlineMs = 15_000;

const usage = `Usage: gossip-connect send HOST:PORT --identity DIR [--pki-id HEX] [--nonce N] [--data TEXT]
                           [--count N] [--ack [--timeout MS]] [--trust-ca FILE,...] [--no-tls] [--json]

Dials HOST:PORT with a full authenticated gossip handshake and sends
--count data messages (DataMessage, payload data = TEXT, seq_num 1..N) on
the connection, in order. Without --ack it waits until they are written to
the stream; with --ack each is sent with Comm.sendWithAck and the command
waits for the remote's acknowledgements, then prints the aggregated result
(Fabric's {"failures":{...},"successes":n}).

Options:
  --identity DIR        our identity (from 'gossip-connect init'); required
  --pki-id HEX          fail unless the remote authenticates as this PKI-ID (64 hex characters)
  --nonce N             nonce of the first message, an unsigned 64-bit integer (decimal
                        or 0x-hex); message i gets N+i-1. Default: random. Not with --ack,
                        which draws a fresh random nonce per message (Fabric's sendWithAck)
  --data TEXT           the payload data (UTF-8); default empty
  --count N             number of messages, 1 to 1000000 (default 1)
  --ack                 wait for an acknowledgement of each message (the remote must ack:
                        'gossip-connect serve --auto-ack' does)
  --timeout MS          how long to wait for each acknowledgement (default ${defaultAckTimeoutMs}); only with --ack
${dialFlagsHelp}
  -h, --help            this help

Exit codes: 0 sent (and, with --ack, every message acknowledged without error),
            1 failure (unreachable, not authenticated, an ack missing or negative), 2 usage.

Example:
  gossip-connect send 127.0.0.1:7051 --identity ./peer2 --trust-ca ./peer1/ca-cert.pem \\
      --data hello --count 3 --ack --timeout 2000`;

const options = {
  ...dialOptions,
  identity: { type: "string" },
  "pki-id": { type: "string" },
  nonce: { type: "string" },
  data: { type: "string" },
  count: { type: "string" },
  ack: { type: "boolean" },
  timeout: { type: "string" },
} as const;

/** A data message, tagged CHAN_AND_ORG as Fabric's gossip layer requires (gossipMessage's default). */
function dataMessage(nonce: bigint, seqNum: number, data: Uint8Array): GossipMessage {
  return gossipMessage({
    nonce,
    content: {
      case: "dataMsg",
      value: create(DataMessageSchema, { payload: create(PayloadSchema, { seqNum: BigInt(seqNum), data }) }),
    },
  });
}

/**
 * Watches a comm's connection events: the remote PKI-ID of the first
 * connection, and the first connection that closed with an error (the remote
 * refusing our identity shows up here, after our side of the handshake
 * already succeeded). Exported for tests.
 */
export class ConnectionWatch {
  remote: string | undefined;
  failure: GossipError | undefined;
  /** Resolves with the first failure. */
  readonly failed: Promise<GossipError>;
  /** Settles when the comm's event stream ended (after stop). */
  readonly done: Promise<void>;
  readonly #waiters = new Set<(e: GossipError) => void>();

  constructor(comm: Pick<Comm, "connectionEvents">) {
    // The first waiter, for good: `failed`.
    this.failed = new Promise((resolve) => this.#waiters.add(resolve));
    this.done = (async () => {
      for await (const ev of comm.connectionEvents) {
        if (ev.type === "connected") this.remote ??= pkiIdHex(ev.connection.pkiId);
        else if (ev.error !== undefined && ev.error.code !== ErrorCode.Stopping && this.failure === undefined) {
          this.failure = ev.error;
          for (const w of this.#waiters) w(ev.error);
          this.#waiters.clear();
        }
      }
    })();
  }

  /**
   * Runs `work` until it settles or the connection fails, whichever is first (the failure is returned).
   * Unlike racing `failed`, which keeps a reaction for every race until it settles (~300 B a message
   * of a long `--ack` run), the waiter here goes when `work` settles.
   */
  async orFailure<T>(work: Promise<T>): Promise<T | GossipError> {
    if (this.failure !== undefined) return this.failure;
    let waiter: ((e: GossipError) => void) | undefined;
    const failed = new Promise<GossipError>((resolve) => {
      waiter = resolve;
      this.#waiters.add(resolve);
    });
    try {
      return await Promise.race([work, failed]);
    } finally {
      if (waiter !== undefined) this.#waiters.delete(waiter);
    }
  }
}

/** Sends without acks: queue every message, then wait until all are written or the peer is presumed dead. */
async function sendPlain(comm: Comm, peer: RemotePeer, messages: readonly GossipMessage[], conns: ConnectionWatch): Promise<void> {
  const it = comm.presumedDead[Symbol.asyncIterator]();
  const dead = it.next().then((r: IteratorResult<PresumedDeadEvent>) => {
    if (!r.done) throw r.value.error;
  });
  try {
    const sent = (async () => {
      for (const m of messages) await comm.send(m, peer);
      const deadline = Date.now() + sendDeadlineMs;
      while (comm.stats().messagesSent < messages.length) {
        if (Date.now() > deadline) {
          throw failure(
            `messages to ${peer.endpoint} were not written within ${sendDeadlineMs / 1000} s`,
            "check the peer's log; it may not be reading its streams",
          );
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const refused = conns.failed.then((e) => {
      throw e;
    });
    await Promise.race([sent, dead, refused]);
  } finally {
    void it.return?.();
  }
}

export const sendCommand: Command = {
  name: "send",
  usage,
  jsonErrorKey: "result",
  async run(argv) {
    const { values: v, positionals, help } = parseCommandLine("send", argv, options, { min: 1, max: 1, names: "HOST:PORT" });
    if (help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    const { endpoint } = parseHostPort("HOST:PORT", positionals[0] as string);
    const pkiId = v["pki-id"] !== undefined ? parsePkiId(v["pki-id"]) : undefined;
    const count = v.count !== undefined ? parseInteger("--count", v.count, 1, 1_000_000) : 1;
    if (v.ack && v.nonce !== undefined) {
      throw usageError(
        "--nonce cannot be combined with --ack",
        "drop --nonce: sendWithAck draws a fresh random nonce for every message (Fabric's behaviour)",
      );
    }
    if (!v.ack && v.timeout !== undefined) throw usageError("--timeout applies only with --ack", "add --ack, or drop --timeout");
    const timeoutMs = v.timeout !== undefined ? parseInteger("--timeout", v.timeout, 1, 600_000, defaultAckTimeoutMs) : defaultAckTimeoutMs;
    let firstNonce: bigint;
    if (v.nonce !== undefined) {
      firstNonce = parseNonce(v.nonce);
      if (firstNonce + BigInt(count - 1) > maxUint64) {
        throw usageError(
          `--nonce ${firstNonce} + --count ${count} runs past the largest 64-bit nonce ${maxUint64}`,
          "pick a smaller --nonce or --count",
        );
      }
    } else {
      firstNonce = randomBytes(8).readBigUInt64BE();
    }
    const data = new TextEncoder().encode(v.data ?? "");
    const setup = dialSetup(v, "send");
    const peer: RemotePeer = { endpoint, pkiId };
    const ctx = { endpoint, noTls: !setup.tls, timeoutMs };
    const out = processOutput(v.json);

    if (!v.ack) {
      const messages = Array.from({ length: count }, (_, i) => dataMessage((firstNonce + BigInt(i)) & maxUint64, i + 1, data));
      const comm = dialComm(setup, { overflowPolicy: "block" });
      const conns = new ConnectionWatch(comm);
      try {
        await sendPlain(comm, peer, messages, conns);
        // A graceful stop drains our side and waits for the remote's end: a refusal arrives by then.
        await comm.stop();
        await conns.done;
        if (conns.failure !== undefined) throw conns.failure;
      } catch (e) {
        throw explain(e, ctx);
      } finally {
        await comm.stop();
      }
      out.record(
        "sent",
        {
          endpoint,
          pkiId: conns.remote,
          count,
          firstNonce,
          lastNonce: (firstNonce + BigInt(count - 1)) & maxUint64,
          dataBytes: data.length,
        },
        "result",
      );
      return 0;
    }

    const comm = dialComm(setup);
    const conns = new ConnectionWatch(comm);
    let successes = 0;
    const failures: Record<string, number> = {};
    let firstError: GossipError | undefined;
    let attempted = 0;
    try {
      for (let i = 0; i < count; i++) {
        attempted++;
        // The connection closing with an error (the remote refused us) ends the wait for its ack.
        const result = await conns.orFailure(comm.sendWithAck(dataMessage(0n, i + 1, data), timeoutMs, 1, peer));
        const r = result instanceof GossipError ? { error: result } : result.results[0];
        if (r !== undefined && r.error === undefined) {
          successes++;
          continue;
        }
        const error = r?.error ?? new GossipError(ErrorCode.Internal, "no result");
        failures[error.message] = (failures[error.message] ?? 0) + 1;
        firstError ??= error;
        // A connection-level failure would fail every remaining message the same way.
        if (!isAckLevel(error)) break;
      }
    } finally {
      await comm.stop();
      await conns.done;
    }
    const summary: Record<string, unknown> = {};
    if (successes < attempted) summary.failures = Object.fromEntries(Object.entries(failures).sort(([a], [b]) => (a < b ? -1 : 1)));
    if (successes > 0) summary.successes = successes;
    out.record(
      "acknowledged",
      {
        endpoint,
        pkiId: conns.remote,
        count,
        attempted,
        successes,
        failed: attempted - successes,
        notSent: count - attempted,
        ok: successes === count,
        summary: JSON.stringify(summary),
      },
      "result",
    );
    if (firstError !== undefined) {
      process.stderr.write(`${errorLine("send", explain(firstError, ctx))}\n`);
      return 1;
    }
    return 0;
  },
};

function isAckLevel(e: GossipError): boolean {
  return e.code === ErrorCode.AckTimeout || e.code === ErrorCode.Nack;
}
