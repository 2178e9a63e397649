/**
 * Collects items during one turn of the event loop and hands them over together at its end
 * (`setImmediate`), so that work each item would do alone (a socket write) is done once for
 * all. The wait is one turn, well under a millisecond; a 1 ms timer instead was measured
 * worse in every process (docs/performance.md).
 */
export class EndOfTurnQueue<T> {
  private items: T[] = [];
  private scheduled = false;

  constructor(private readonly handOver: (items: T[]) => void) {}

  push(item: T): void {
    this.items.push(item);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const due = this.items;
      this.items = [];
      this.handOver(due);
    });
  }

  /** Drops what is waiting (shutdown). */
  clear(): void {
    this.items = [];
  }
}
