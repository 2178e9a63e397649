import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** How often the event-loop delay is sampled (ms), for the nodejs_eventloop_lag_* series. */
const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * The metrics operators chart, with the names the dashboards and alert rules use
 * (deploy/grafana, deploy/prometheus). Labels: `service` on every series (a default
 * label), `stage` where a service has more than one stage of work.
 */
export class IotMetrics {
  readonly registry = new Registry();
  readonly messagesReceived: Counter<'stage'>;
  readonly messagesProcessed: Counter<'stage' | 'outcome'>;
  readonly processingDuration: Histogram<'stage'>;
  readonly consumerLag: Gauge<'consumer' | 'stream'>;
  /** A consumer's unprocessed backlog as a share of its stream's byte limit; at 1 the stream discards it. */
  readonly consumerBacklogRatio: Gauge<'consumer' | 'stream'>;
  /** 1 while a consumer takes nothing more because the next stage's backlog is near its limit. */
  readonly consumerHeldBack: Gauge<'consumer' | 'downstream'>;
  /** 1 while the bridge refuses HTTP ingest because the raw stream's backlog is near its limit. */
  readonly ingestRefusing: Gauge<'transport' | 'consumer'>;
  readonly dlqSize: Gauge<'stream'>;
  readonly workerErrors: Counter<'stage' | 'kind'>;
  readonly pointsSuppressed: Counter<'stage'>;
  /** Device timestamp to database commit (what a user waits for a reading to be queryable). */
  readonly eventToCommit: Histogram;
  /** Bridge receipt to database commit (the pipeline's own latency, whatever the device clock). */
  readonly ingestToCommit: Histogram;

  constructor(readonly service: string) {
    this.registry.setDefaultLabels({ service });
    // The event-loop delay histogram samples on a timer: prom-client's default, every 10 ms,
    // woke each idle service 100 times a second, 0.4% of a core each at rest here; every
    // 100 ms costs a tenth of that and still catches any stall longer than it.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    const registers = [this.registry];
    this.messagesReceived = new Counter({
      name: 'iot_messages_received_total',
      help: 'Messages taken in by a stage (MQTT messages at the bridge, JetStream messages elsewhere, each message of a pack counted)',
      labelNames: ['stage'],
      registers,
    });
    this.messagesProcessed = new Counter({
      name: 'iot_messages_processed_total',
      help: 'Messages settled by a stage, by outcome (ok, retry, dlq, dropped; refused: HTTP ingest answered 503 and kept nothing; skipped: meant for another service, in a stream taken whole)',
      labelNames: ['stage', 'outcome'],
      registers,
    });
    this.processingDuration = new Histogram({
      name: 'iot_processing_duration_seconds',
      help: 'Time from taking a message (or batch) to settling it',
      labelNames: ['stage'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.consumerLag = new Gauge({
      name: 'iot_nats_consumer_lag',
      help: 'Messages of a durable consumer not yet acknowledged: pending plus ack-pending',
      labelNames: ['consumer', 'stream'],
      registers,
    });
    this.consumerBacklogRatio = new Gauge({
      name: 'iot_nats_consumer_backlog_ratio',
      help: "A durable consumer's unprocessed messages (past its ack floor) as a share of its stream's byte limit (max_bytes); at 1 the stream discards messages the consumer has not processed",
      labelNames: ['consumer', 'stream'],
      registers,
    });
    this.consumerHeldBack = new Gauge({
      name: 'iot_consumer_held_back',
      help: "1 while a durable consumer takes no more messages because the next stage's consumer (downstream) is behind by more than BACKPRESSURE_RATIO of its stream's byte limit: the backlog waits in this consumer's stream instead",
      labelNames: ['consumer', 'downstream'],
      registers,
    });
    this.ingestRefusing = new Gauge({
      name: 'iot_ingest_refusing',
      help: "1 while the bridge answers 503 to new messages of a transport (http) because the raw stream's consumer is behind by more than INGEST_REFUSE_RATIO of the stream's byte limit: taken, they could be discarded unprocessed",
      labelNames: ['transport', 'consumer'],
      registers,
    });
    this.dlqSize = new Gauge({
      name: 'iot_dlq_size',
      help: 'Messages held in the dead-letter stream',
      labelNames: ['stream'],
      registers,
    });
    this.workerErrors = new Counter({
      name: 'iot_worker_errors_total',
      help: 'Errors while processing, by kind (retryable, permanent, publish, connection)',
      labelNames: ['stage', 'kind'],
      registers,
    });
    this.pointsSuppressed = new Counter({
      name: 'iot_points_suppressed_total',
      help: 'Points held back by the deadband (a value unchanged within its tolerance)',
      labelNames: ['stage'],
      registers,
    });
    // Fine up to a second (the targets live there), and still close enough past ten seconds
    // that a backlog reads as how long it is: a quantile interpolates within its bucket, so a
    // wide 10-30 s bucket reported any backlog over 10 s as ~29 s.
    const latencyBuckets = [
      0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5,
      7.5, 10, 12.5, 15, 20, 25, 30, 45, 60, 120,
    ];
    this.eventToCommit = new Histogram({
      name: 'iot_event_to_commit_seconds',
      help: "From a message's device timestamp to the commit of its rows (tsdb-writer)",
      buckets: latencyBuckets,
      registers,
    });
    this.ingestToCommit = new Histogram({
      name: 'iot_ingest_to_commit_seconds',
      help: 'From the bridge receiving a message to the commit of its rows (tsdb-writer)',
      buckets: latencyBuckets,
      registers,
    });
  }

  /**
   * Publishes a stage's series at zero before any traffic, so dashboards and rate() see
   * them from the start instead of a gap (Prometheus practice for known label sets).
   */
  initStage(stage: string): void {
    this.messagesReceived.inc({ stage }, 0);
    for (const outcome of ['ok', 'retry', 'dlq', 'dropped'])
      this.messagesProcessed.inc({ stage, outcome }, 0);
    for (const kind of ['retryable', 'permanent', 'connection']) this.workerErrors.inc({ stage, kind }, 0);
    this.processingDuration.zero({ stage });
  }

  metricsText(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
