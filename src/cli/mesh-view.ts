/**
 * The live view of `gossip-connect mesh`: a table redrawn in place once a
 * second on a terminal, or one summary line per second elsewhere (CI logs).
 */

/** What the view shows of one peer, for the last second. */
export interface PeerRow {
  readonly name: string;
  readonly pkiId: string;
  readonly endpoint: string;
  readonly inbound: number;
  readonly outbound: number;
  readonly sentPerSecond: number;
  readonly receivedPerSecond: number;
  readonly overflow: number;
  readonly presumedDead: number;
  /** Other peers it has received from so far, of `others`. */
  readonly heardFrom: number;
  readonly others: number;
  /** False while the peer is away (the leave/return demo). */
  readonly up: boolean;
  /** Its membership view: members alive and presumed dead. */
  readonly viewAlive: number;
  readonly viewDead: number;
}

/** A membership change one peer saw, for the event log. */
export interface ViewEvent {
  /** Seconds since the mesh started. */
  readonly atS: number;
  readonly observer: string;
  readonly subject: string;
  readonly type: "joined" | "died" | "revived" | "removed";
}

/** One line about a membership event. */
export function renderEvent(e: ViewEvent): string {
  const what = e.type === "died" ? "presumed dead" : e.type === "revived" ? "alive again (revived)" : e.type;
  return `[${e.atS.toFixed(1).padStart(5)}s] ${e.observer} sees ${e.subject} ${what}`;
}

/** Short form of a hex PKI-ID (its first 8 characters). */
export function shortPki(hex: string): string {
  return hex.slice(0, 8);
}

/** Renders the table (TTY). */
export function renderTable(
  rows: readonly PeerRow[],
  elapsedS: number,
  totals: { sent: number; received: number },
  events: readonly ViewEvent[] = [],
): string[] {
  const header = ["PEER", "PKI-ID", "ENDPOINT", "VIEW alive/dead", "CONNS in/out", "SENT/s", "RECV/s", "OVERFLOW", "DEAD", "HEARD FROM"];
  const cells = rows.map((r) => [
    r.name,
    shortPki(r.pkiId),
    r.endpoint,
    r.up ? `${r.viewAlive}/${r.viewDead}` : "(away)",
    `${r.inbound + r.outbound} (${r.inbound}/${r.outbound})`,
    String(r.sentPerSecond),
    String(r.receivedPerSecond),
    String(r.overflow),
    String(r.presumedDead),
    `${r.heardFrom}/${r.others}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? "").length)));
  const fmt = (c: readonly string[]) => ` ${c.map((v, i) => (i >= 5 ? v.padStart(widths[i] ?? 0) : v.padEnd(widths[i] ?? 0))).join("  ")}`;
  return [
    fmt(header),
    ...cells.map(fmt),
    ` up ${elapsedS}s   messages sent ${totals.sent}   received ${totals.received}   (Ctrl-C stops)`,
    ...(events.length > 0 ? [" membership changes (latest last):", ...events.map((e) => `  ${renderEvent(e)}`)] : []),
  ];
}

/** Renders one line (non-TTY). */
export function renderLine(rows: readonly PeerRow[], elapsedS: number): string {
  return `[${String(elapsedS).padStart(3)}s] ${rows
    .map(
      (r) =>
        `${r.name} ${shortPki(r.pkiId)} conns=${r.inbound}/${r.outbound} tx=${r.sentPerSecond}/s rx=${r.receivedPerSecond}/s overflow=${r.overflow} dead=${r.presumedDead} heard=${r.heardFrom}/${r.others} ${r.up ? `view=${r.viewAlive}/${r.viewDead}` : "away"}`,
    )
    .join(" | ")}`;
}

/** Redraws a block of lines in place on a terminal. */
export class TtyBlock {
  private drawn = 0;

  constructor(private readonly write: (s: string) => void) {}

  /** Replaces the previously drawn block with `lines`. */
  draw(lines: readonly string[]): void {
    let s = this.drawn > 0 ? `\x1b[${this.drawn}A\r` : "\x1b[?25l";
    for (const l of lines) s += `\x1b[2K${l}\n`;
    // Clear leftovers when the block shrank.
    for (let i = lines.length; i < this.drawn; i++) s += "\x1b[2K\n";
    if (this.drawn > lines.length) s += `\x1b[${this.drawn - lines.length}A`;
    this.write(s);
    this.drawn = lines.length;
  }

  /** Shows the cursor again (call once at the end). */
  done(): void {
    this.write("\x1b[?25h");
  }
}
