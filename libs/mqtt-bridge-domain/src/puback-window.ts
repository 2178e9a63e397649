/**
 * The PUBACKs of one MQTT connection while several of its QoS 1 messages are on their way
 * to JetStream at once. Each is released only once its own message is held (settled), and
 * in the order the PUBLISHes arrived, as MQTT requires of a receiver (3.1.1 and 5.0, §4.6):
 * one that settles early waits for those before it. When the connection closes, whatever is
 * still held is dropped, never acknowledged: the broker sends those messages again, and
 * the stream's duplicate window drops the copies that had made it.
 */
export class PubackWindow<T> {
  private queue: Array<{ puback: T | undefined; settled: boolean }> = [];

  constructor(private readonly release: (pubacks: T[]) => void) {}

  /** Messages taken and not yet acknowledged. */
  get size(): number {
    return this.queue.length;
  }

  /**
   * A PUBLISH arrived. `capture` gives its PUBACK once the client has produced it; `settle`
   * says the message is held. Both of an entry dropped by `drop()` do nothing.
   */
  hold(): { capture(puback: T): void; settle(): void } {
    const entry = { puback: undefined as T | undefined, settled: false };
    this.queue.push(entry);
    const generation = this.queue;
    return {
      capture: (puback) => {
        entry.puback = puback;
        if (generation === this.queue) this.flush();
      },
      settle: () => {
        entry.settled = true;
        if (generation === this.queue) this.flush();
      },
    };
  }

  /** The connection closed: nothing held is acknowledged. Returns how many were dropped. */
  drop(): number {
    const dropped = this.queue.length;
    this.queue = [];
    return dropped;
  }

  private flush(): void {
    let n = 0;
    while (n < this.queue.length && this.queue[n]!.settled && this.queue[n]!.puback !== undefined) n++;
    if (n === 0) return;
    this.release(this.queue.splice(0, n).map((e) => e.puback!));
  }
}
