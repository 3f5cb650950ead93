// The guard against connect-es #1795: connect-node's keepalive may call
// session.ping() on a session that was just destroyed; unguarded, Node throws
// ERR_HTTP2_INVALID_SESSION synchronously (an uncaught exception from a
// timer, which exits the process). Real sessions on loopback, no mocks.
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { GuardedSessionManager, guardSessionPing } from "../../src/client/session-manager.js";

let server: http2.Http2Server;
let url: string;
const sessions: http2.ClientHttp2Session[] = [];

before(async () => {
  server = http2.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  });
  server.on("session", (s) => s.on("error", () => {}));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  for (const s of sessions) if (!s.destroyed) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

/** A client session that finished connecting. */
async function connected(): Promise<http2.ClientHttp2Session> {
  const s = http2.connect(url);
  sessions.push(s);
  s.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    s.once("connect", () => resolve());
    s.once("error", reject);
  });
  return s;
}

/** Destroys `s` and waits for its 'close'. */
async function destroyed(s: http2.ClientHttp2Session): Promise<void> {
  const closed = new Promise<void>((r) => s.once("close", () => r()));
  s.destroy();
  await closed;
  assert.equal(s.destroyed, true);
}

type PingResult = { err: (Error & { code?: string }) | null; duration: number };

function pingCb(): { cb: (err: Error | null, duration: number) => void; result: Promise<PingResult> } {
  let resolve!: (r: PingResult) => void;
  const result = new Promise<PingResult>((r) => (resolve = r));
  return { cb: (err, duration) => resolve({ err, duration }), result };
}

describe("guardSessionPing (connect-es #1795)", () => {
  it("control: an unguarded destroyed session's ping() throws ERR_HTTP2_INVALID_SESSION", async () => {
    const s = await connected();
    await destroyed(s);
    assert.throws(
      () => s.ping(() => {}),
      (e: unknown) => (e as { code?: string }).code === "ERR_HTTP2_INVALID_SESSION",
    );
  });

  it("a guarded destroyed session's ping() does not throw, returns false and reports the error to the callback", async () => {
    const s = await connected();
    guardSessionPing(s);
    await destroyed(s);
    const { cb, result } = pingCb();
    let returned: boolean | undefined;
    assert.doesNotThrow(() => {
      returned = s.ping(cb);
    });
    assert.equal(returned, false);
    const r = await result;
    assert.equal(r.err?.code, "ERR_HTTP2_INVALID_SESSION");
  });

  it("a guarded live session still pings the server (and guarding twice is harmless)", async () => {
    const s = await connected();
    guardSessionPing(s);
    guardSessionPing(s);
    const { cb, result } = pingCb();
    assert.equal(s.ping(cb), true);
    const r = await result;
    assert.equal(r.err, null);
    assert.equal(typeof r.duration, "number");
    await destroyed(s);
  });

  it("GuardedSessionManager guards the sessions it opens: ping() after abort() does not throw", async () => {
    const sm = new GuardedSessionManager(url, { pingIntervalMs: 60_000, pingTimeoutMs: 5000 }, {}, 1024 * 1024);
    assert.notEqual(await sm.connectVerified(), "error");
    const stream = await sm.request("GET", "/", {}, {});
    const session = stream.session;
    assert.ok(session, "the stream has a session");
    stream.on("error", () => {});
    const closed = new Promise<void>((r) => session.once("close", () => r()));
    sm.abort();
    await closed;
    assert.equal(session.destroyed, true);
    const { cb, result } = pingCb();
    assert.doesNotThrow(() => session.ping(cb));
    assert.equal((await result).err?.code, "ERR_HTTP2_INVALID_SESSION");
  });
});
