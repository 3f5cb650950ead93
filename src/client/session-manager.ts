import type * as http2 from "node:http2";
import { Http2SessionManager } from "@connectrpc/connect-node";

const guarded = new WeakSet<http2.Http2Session>();

/**
 * Makes `session.ping()` safe to call on a destroyed session: instead of
 * throwing ERR_HTTP2_INVALID_SESSION synchronously (which, from connect-node's
 * keepalive timer, is an uncaught exception that exits the process:
 * connect-es #1795), it reports the error to the callback and returns false.
 * Idempotent.
 */
export function guardSessionPing(session: http2.Http2Session): void {
  if (guarded.has(session)) return;
  guarded.add(session);
  const ping = session.ping.bind(session) as (...args: unknown[]) => boolean;
  (session as { ping: (...args: unknown[]) => boolean }).ping = (...args: unknown[]) => {
    if (session.destroyed) {
      const cb = args.find((a): a is (err: Error, duration: number, payload: Buffer) => void => typeof a === "function");
      const err = Object.assign(new Error("The session has been destroyed"), { code: "ERR_HTTP2_INVALID_SESSION" });
      if (cb) process.nextTick(cb, err, 0, Buffer.alloc(8));
      return false;
    }
    return ping(...args);
  };
}

/**
 * connect-node's `Http2SessionManager` with two additions applied to every
 * session it opens, before any keepalive timer can fire on it: the ping guard
 * of {@link guardSessionPing}, and a larger connection-level receive window
 * (`setLocalWindowSize`).
 */
export class GuardedSessionManager extends Http2SessionManager {
  private readonly windowBytes: number;

  constructor(
    url: string,
    pingOptions: ConstructorParameters<typeof Http2SessionManager>[1],
    sessionOptions: ConstructorParameters<typeof Http2SessionManager>[2],
    windowBytes: number,
  ) {
    super(url, pingOptions, sessionOptions);
    this.windowBytes = windowBytes;
  }

  override async request(
    method: string,
    path: string,
    headers: http2.OutgoingHttpHeaders,
    options: Omit<http2.ClientSessionRequestOptions, "signal">,
  ): Promise<http2.ClientHttp2Stream> {
    const stream = await super.request(method, path, headers, options);
    const session = stream.session;
    if (session && !guarded.has(session)) {
      guardSessionPing(session);
      try {
        session.setLocalWindowSize(this.windowBytes);
      } catch {
        // The session may already be closing; the window only matters for throughput.
      }
    }
    return stream;
  }
}
