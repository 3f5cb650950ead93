/**
 * Screens: a subscription's look at each received message before the comm
 * decodes it (see `Comm.accept`). A layer that recognises from the bytes
 * alone that it has nothing to do with a message (a copy of what it already
 * holds, say) declines it there; a message every subscription declines is
 * never decoded. The comm knows nothing of why: the rules stay with the
 * layer that owns them.
 */
import type { Envelope } from "../gen/gossip/message_pb.js";
import type { ConnectionInfo } from "./connection.js";
import type { Subscription } from "./demux.js";

/**
 * Looks at a received Envelope (decoded, its payload not yet) from an
 * authenticated connection, synchronously, in the order messages are read,
 * before any message read after it is delivered to anyone. Returns true to
 * decline the message: the subscription then never receives it, and when
 * every subscription declined it, it is not decoded at all (a payload that
 * would not decode then does not fail the connection either). So a screen
 * must decline only a message it has read in full from the bytes, proved
 * well-formed, proved not to be an acknowledgement (those go to
 * `sendWithAck`, never to subscriptions) and dealt with as its subscriber
 * would have. A screen that throws declines nothing.
 */
export type EnvelopeScreen = (envelope: Envelope, from: ConnectionInfo) => boolean;

/** @private The screens of a comm's subscriptions (internal, for the router). */
export class Screens<T> {
  private list: { readonly sub: Subscription<T>; readonly screen: EnvelopeScreen; readonly alone: readonly Subscription<T>[] }[] = [];

  /** Screens every message `sub` would receive with `screen` (until `sub` closes). */
  add(sub: Subscription<T>, screen: EnvelopeScreen): void {
    if (!sub.closed) this.list = [...this.list, { sub, screen, alone: [sub] }];
  }

  /** True when no open subscription has a screen (nothing to ask). */
  get empty(): boolean {
    return this.list.length === 0;
  }

  /** The open subscriptions whose screen declined `envelope` from `from`, or undefined when none did. */
  declined(envelope: Envelope, from: ConnectionInfo): readonly Subscription<T>[] | undefined {
    let out: readonly Subscription<T>[] | undefined;
    const list = this.list;
    for (let i = 0; i < list.length; i++) {
      const { sub, screen, alone } = list[i] as (typeof list)[number];
      if (sub.closed) {
        this.list = this.list.filter((s) => !s.sub.closed);
        continue;
      }
      let declined = false;
      try {
        declined = screen(envelope, from);
      } catch {
        // declines nothing
      }
      if (!declined) continue;
      // Mostly one screen declines alone: its one-element list, made once, not an array per message.
      out = out === undefined ? alone : [...out, sub];
    }
    return out;
  }
}
