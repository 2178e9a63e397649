/**
 * Collects items and hands them over together, so that work each item would do alone (a
 * socket write) is done once for all: at the end of the event-loop turn (`setImmediate`, well
 * under a millisecond), or `lingerMs` after the first item where items arrive one per turn
 * (the bridge takes MQTT messages one by one). A 1 ms wait for the bridge's publishes saved
 * 6% of the pipeline's CPU at 5,000 msg/s (the bridge 7%, mosquitto 6%, nats-server 3%) with
 * no change to the median latency that the runs could see (docs/performance-history.md,
 * 2026-12-04 late evening).
 */
export class EndOfTurnQueue<T> {
  private items: T[] = [];
  /** The wait in progress: a linger's timer, or the end of the turn; neither when none waits. */
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;

  /**
   * `soonerAt`: with `lingerMs`, once this many items wait they leave at the end of the turn,
   * not the linger's end: where messages wait for their turn in a window (the bridge's MQTT
   * window), a full wait costs throughput, and so many already share one write.
   */
  constructor(
    private readonly handOver: (items: T[]) => void,
    private readonly lingerMs = 0,
    private readonly soonerAt = Infinity,
  ) {}

  private readonly go = () => {
    this.cancel();
    const due = this.items;
    this.items = [];
    this.handOver(due);
  };

  push(item: T): void {
    this.items.push(item);
    if (this.immediate) return;
    if (this.timer) {
      if (this.items.length >= this.soonerAt) {
        this.cancel();
        this.immediate = setImmediate(this.go);
      }
      return;
    }
    if (this.lingerMs > 0 && this.soonerAt > 1) this.timer = setTimeout(this.go, this.lingerMs);
    else this.immediate = setImmediate(this.go);
  }

  /** Drops what is waiting (shutdown), and the wait with it. */
  clear(): void {
    this.items = [];
    this.cancel();
  }

  private cancel(): void {
    clearTimeout(this.timer);
    clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }
}
