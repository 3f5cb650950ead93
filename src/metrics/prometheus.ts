import { Counter, Gauge, Registry } from "prom-client";
import type { Comm } from "../core/comm.js";
import type { CommConfig } from "../core/config.js";
import type { ErrorCode } from "../core/errors.js";
import type { CommMetrics, Direction, DropReason } from "../core/metrics.js";

/**
 * Prometheus metrics of a comm, through prom-client, in their own registry
 * (merge it into yours with `Registry.merge`, or serve it with the plugin's
 * `/metrics`).
 *
 * Names: Fabric's three gossip comm counters keep Fabric's exact names (no
 * `_total`) so existing Fabric dashboards work; every other metric follows
 * Prometheus conventions. Labels are low-cardinality (direction, reason,
 * outcome): never a PKI-ID or an address.
 */
export class PrometheusMetrics implements CommMetrics {
  /** The registry holding every metric below. */
  readonly registry: Registry;
  private readonly sent: Counter;
  private readonly received: Counter;
  private readonly overflowCount: Counter;
  private readonly sentBytes: Counter;
  private readonly receivedBytes: Counter;
  private readonly droppedMessages: Counter<"reason">;
  private readonly handshakes: Counter<"direction" | "outcome">;
  private readonly connectionsOpen: Gauge<"direction">;
  private readonly presumedDeadEvents: Counter;
  private readonly identitySwitches: Counter;
  private readonly refusedStreams: Counter<"reason">;
  private bound: Comm | undefined;
  private transportLimits: Readonly<Record<string, number>> | undefined;

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    const r = [registry];
    this.sent = new Counter({
      name: "gossip_comm_messages_sent",
      help: "Envelopes written to gossip streams (Fabric's metric; handshakes not counted).",
      registers: r,
    });
    this.received = new Counter({
      name: "gossip_comm_messages_received",
      help: "Envelopes read from gossip streams, before parsing (Fabric's metric).",
      registers: r,
    });
    this.overflowCount = new Counter({
      name: "gossip_comm_overflow_count",
      help: "Messages dropped because a connection's send buffer was full (Fabric's metric).",
      registers: r,
    });
    this.sentBytes = new Counter({ name: "gossip_comm_sent_bytes_total", help: "Bytes of envelopes written.", registers: r });
    this.receivedBytes = new Counter({
      name: "gossip_comm_received_bytes_total",
      help: "Bytes of envelopes read (payload and signature).",
      registers: r,
    });
    this.droppedMessages = new Counter({
      name: "gossip_comm_dropped_messages_total",
      help: "Messages accepted for sending that were never written, by reason.",
      labelNames: ["reason"],
      registers: r,
    });
    this.handshakes = new Counter({
      name: "gossip_comm_handshakes_total",
      help: "Handshakes by direction and outcome (ok, probe, or the error code).",
      labelNames: ["direction", "outcome"],
      registers: r,
    });
    this.connectionsOpen = new Gauge({
      name: "gossip_comm_connections_open",
      help: "Registered connections by direction.",
      labelNames: ["direction"],
      registers: r,
    });
    this.presumedDeadEvents = new Counter({ name: "gossip_comm_presumed_dead_total", help: "Presumed-dead events emitted.", registers: r });
    this.identitySwitches = new Counter({
      name: "gossip_comm_identity_switches_total",
      help: "Identity-switch events emitted.",
      registers: r,
    });
    this.refusedStreams = new Counter({
      name: "gossip_comm_refused_total",
      help: "Streams, requests or connections refused outside a successful handshake (limits, bad framing, bad payloads, TLS failures), by reason.",
      labelNames: ["reason"],
      registers: r,
    });
    for (const direction of ["inbound", "outbound"]) this.connectionsOpen.labels(direction).set(0);
    const comm = () => this.bound;
    const limits = () => this.transportLimits ?? {};
    new Gauge({
      name: "gossip_comm_send_buffer_messages",
      help: "Messages waiting in send buffers (all connections).",
      registers: r,
      collect() {
        const c = comm();
        if (c) this.set(c.stats().sendBuffered);
      },
    });
    new Gauge({
      name: "gossip_comm_unauthenticated_streams",
      help: "Inbound streams in the handshake now.",
      registers: r,
      collect() {
        const c = comm();
        if (c) this.set(c.stats().unauthenticatedStreams);
      },
    });
    new Gauge({
      name: "gossip_comm_pending_acks",
      help: "Acknowledgements sendWithAck is waiting for.",
      registers: r,
      collect() {
        const c = comm();
        if (c) this.set(c.stats().pendingAcks);
      },
    });
    new Gauge({
      name: "gossip_comm_limit",
      help: "Configured limits of the comm (sendBuffSize, maxConcurrentStreams, ...), by name.",
      labelNames: ["name"],
      registers: r,
      collect() {
        const c = comm();
        if (!c) return;
        const cfg: CommConfig = c.config;
        for (const [name, value] of Object.entries({ ...cfg, ...limits() })) if (typeof value === "number") this.labels(name).set(value);
      },
    });
  }

  /**
   * Lets the gauges read the comm's current state at scrape time;
   * `transportLimits` (the server's HTTP/2 options, say) join the comm's
   * options in `gossip_comm_limit`.
   */
  bind(comm: Comm, transportLimits?: Readonly<Record<string, number>>): void {
    this.bound = comm;
    this.transportLimits = transportLimits;
  }

  messagesSent(count: number, bytes: number): void {
    this.sent.inc(count);
    this.sentBytes.inc(bytes);
  }
  messagesReceived(count: number, bytes: number): void {
    this.received.inc(count);
    this.receivedBytes.inc(bytes);
  }
  overflow(): void {
    this.overflowCount.inc();
  }
  dropped(reason: DropReason, count: number): void {
    this.droppedMessages.labels(reason).inc(count);
  }
  handshake(direction: Direction, outcome: "ok" | "probe" | ErrorCode): void {
    this.handshakes.labels(direction, outcome).inc();
  }
  connectionOpened(direction: Direction): void {
    this.connectionsOpen.labels(direction).inc();
  }
  connectionClosed(direction: Direction): void {
    this.connectionsOpen.labels(direction).dec();
  }
  presumedDead(): void {
    this.presumedDeadEvents.inc();
  }
  refused(reason: ErrorCode | (string & {})): void {
    this.refusedStreams.labels(reason).inc();
  }
  identitySwitch(): void {
    this.identitySwitches.inc();
  }
}
