/** One message of a window: `settle()` says it is held by the stream. */
export interface Held {
  settle(): void;
}

class Entry<T> implements Held {
  settled = false;

  constructor(
    readonly puback: T,
    private readonly window: PubackWindow<T>,
    private readonly generation: readonly Entry<T>[],
  ) {}

  settle(): void {
    this.settled = true;
    this.window.settled(this.generation);
  }
}

/**
 * The PUBACKs of one MQTT connection while several of its QoS 1 messages are on their way
 * to JetStream at once. Each is released only once its own message is held (settled), and
 * in the order the PUBLISHes arrived, as MQTT requires of a receiver (3.1.1 and 5.0, §4.6):
 * one that settles early waits for those before it. When the connection closes, whatever is
 * still held is dropped, never acknowledged: the broker sends those messages again, and
 * the stream's duplicate window drops the copies that had made it.
 */
export class PubackWindow<T> {
  private queue: Entry<T>[] = [];

  constructor(private readonly release: (pubacks: T[]) => void) {}

  /** Messages taken and not yet acknowledged. */
  get size(): number {
    return this.queue.length;
  }

  /**
   * A PUBLISH arrived, `puback` what acknowledges it (its packet identifier); it is released
   * once the returned entry is settled and those before it are. Settling an entry that
   * `drop()` dropped does nothing.
   */
  hold(puback: T): Held {
    const entry = new Entry(puback, this, this.queue);
    this.queue.push(entry);
    return entry;
  }

  /** The connection closed: nothing held is acknowledged. Returns how many were dropped. */
  drop(): number {
    const dropped = this.queue.length;
    this.queue = [];
    return dropped;
  }

  /** @internal An entry of `generation` (the queue it was held in) settled. */
  settled(generation: readonly Entry<T>[]): void {
    if (generation !== this.queue) return;
    let n = 0;
    while (n < this.queue.length && this.queue[n]!.settled) n++;
    if (n === 0) return;
    this.release(this.queue.splice(0, n).map((e) => e.puback));
  }
}
