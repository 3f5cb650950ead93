/**
 * A Connect-protocol (or gRPC-web) GossipStream client as a {@link WireStream}, for running
 * the compliance suite against the server's connect-fastify path (gossip-connect
 * dials with gRPC only, so this adapter lives with the tests). It uses
 * connect-node's Connect transport over HTTP/2 and maps a call's end through
 * the same gRPC status mapping as our gRPC client (Connect's codes are gRPC's).
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { decodeEnvelope } from "../../src/core/envelope.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import type { WireStream } from "../../src/core/transport.js";
import { type Envelope, Gossip } from "../../src/gen/gossip/message_pb.js";
import { errorCodeTrailer, errorFromGrpcStatus } from "../../src/grpc/status.js";

interface Pending {
  readonly items: Envelope[];
  readonly done: () => void;
  readonly fail: (e: GossipError) => void;
}

/**
 * connect-node cancels a stream with `stream.close(CANCEL)`, which sends
 * END_STREAM just before the RST_STREAM, so that the server reads a clean
 * end first. As our gRPC client does, streams here get a request signal
 * instead, whose abort resets with CANCEL only (`nextSignal`, taken by the
 * next request).
 */
class CancellingSessionManager extends Http2SessionManager {
  nextSignal: AbortSignal | undefined;
  override request(
    ...[method, path, headers, options]: Parameters<Http2SessionManager["request"]>
  ): ReturnType<Http2SessionManager["request"]> {
    const signal = this.nextSignal;
    this.nextSignal = undefined;
    return super.request(method, path, headers, {
      ...options,
      signal,
    } as typeof options);
  }
}

/** Opens Connect-protocol GossipStreams to `endpoint` on one HTTP/2 connection. */
export function connectProtocolStream(
  endpoint: string,
  tls: { ca: string; cert: string; key: string } | undefined,
  hashes: { client: Uint8Array; server: Uint8Array } | undefined,
  protocol: "connect" | "grpcweb" = "connect",
): { open(timeoutMs?: number): Promise<WireStream>; close(): void } {
  const baseUrl = `${tls ? "https" : "http"}://${endpoint}`;
  const sessions = new CancellingSessionManager(baseUrl, undefined, tls ? { ca: tls.ca, cert: tls.cert, key: tls.key } : {});
  const createTransport = protocol === "connect" ? createConnectTransport : createGrpcWebTransport;
  const client = createClient(Gossip, createTransport({ baseUrl, httpVersion: "2", sessionManager: sessions }));
  return {
    close: () => sessions.abort(),
    async open(timeoutMs) {
      const ac = new AbortController();
      const cancel = new AbortController();
      sessions.nextSignal = cancel.signal;
      let pending: Pending | undefined;
      let wakeWriter: (() => void) | undefined;
      let ended = false;
      let stopped: GossipError | undefined;
      let requestsDone = false;
      let responsesDone = false;
      let resolveClosed: () => void = () => {};
      const closed = new Promise<void>((r) => (resolveClosed = r));
      let responseEnd: { error?: GossipError } | undefined;
      const settle = () => {
        // A call the server ended with an error is over, whatever the request side does.
        if (stopped || (responsesDone && (requestsDone || responseEnd?.error))) resolveClosed();
      };
      async function* requests(): AsyncGenerator<Envelope> {
        try {
          for (;;) {
            while (!pending && !ended && !stopped) await new Promise<void>((r) => (wakeWriter = r));
            const p = pending;
            if (!p) return;
            for (const e of p.items) yield e;
            pending = undefined;
            p.done();
          }
        } finally {
          requestsDone = true;
          settle();
        }
      }
      const abort = (error?: GossipError) => {
        if (stopped) return;
        stopped = error ?? new GossipError(ErrorCode.Canceled, `stream to ${endpoint} was closed`);
        pending?.fail(new GossipError(ErrorCode.Closed, "stream is closed"));
        pending = undefined;
        wakeWriter?.();
        wakeReader?.();
        cancel.abort();
        ac.abort();
        settle();
      };
      // Responses are pumped as they arrive (as the gRPC client's 'data'
      // listener does), so that the call completes whether or not the
      // reader reads; the reader takes what arrived.
      const arrived: Envelope[] = [];
      let wakeReader: (() => void) | undefined;
      void (async () => {
        try {
          for await (const env of client.gossipStream(requests(), {
            signal: ac.signal,
          })) {
            arrived.push(env);
            wakeReader?.();
          }
          responseEnd = {};
          // A gRPC call is over once its status is in: end the request side too.
          ended = true;
          wakeWriter?.();
        } catch (e) {
          const ce = ConnectError.from(e);
          responseEnd = {
            error:
              ce.code === Code.Canceled
                ? new GossipError(ErrorCode.Canceled, ce.rawMessage, {
                    cause: e,
                  })
                : errorFromGrpcStatus(ce.code, ce.rawMessage, ce.metadata.get(errorCodeTrailer) ?? undefined),
          };
        } finally {
          responsesDone = true;
          settle();
          wakeReader?.();
        }
      })();
      async function* incoming(): AsyncGenerator<readonly Envelope[]> {
        for (;;) {
          if (arrived.length > 0) {
            yield arrived.splice(0);
            continue;
          }
          if (stopped) throw stopped;
          if (responseEnd?.error) throw responseEnd.error;
          if (responseEnd) return;
          await new Promise<void>((r) => (wakeReader = r));
        }
      }
      if (timeoutMs !== undefined) {
        const timer = setTimeout(
          () => abort(new GossipError(ErrorCode.HandshakeTimeout, `stream exceeded its ${timeoutMs}ms deadline`)),
          timeoutMs,
        );
        void closed.then(() => clearTimeout(timer));
      }
      return {
        remoteAddress: endpoint,
        tls: tls !== undefined,
        remoteCertHash: hashes?.server,
        localCertHash: hashes?.client,
        incoming: incoming(),
        closed,
        write(frames) {
          if (ended || stopped) return Promise.reject(new GossipError(ErrorCode.Closed, "stream is closed"));
          const items = frames.map((f) => decodeEnvelope(f));
          return new Promise((done, fail) => {
            pending = { items, done, fail };
            wakeWriter?.();
          });
        },
        end() {
          ended = true;
          wakeWriter?.();
        },
        abort,
      };
    },
  };
}
