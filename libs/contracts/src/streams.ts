import { SubjectFilters } from './subjects';

export interface StreamContract {
  name: string;
  subjects: string[];
  /** Maximum age of a message, in milliseconds. */
  maxAgeMs: number;
  maxBytes: number;
  /** Window in which a repeated `Nats-Msg-Id` is dropped by the server, in milliseconds. */
  duplicateWindowMs: number;
  description: string;
  /** Direct get (read any message by sequence or subject from any replica): the DLQ API uses it. */
  allowDirect?: boolean;
}

const DAY = 24 * 60 * 60 * 1000;
const GB = 1024 ** 3;

/**
 * Two minutes on the telemetry streams (docs/adr/0007): long enough for a device that
 * resends after a lost PUBACK (keepalive, reconnect) and for a stage's redelivery after its
 * ack wait; past it, the table's primary key still stores a reading once. Every message id
 * in the window costs each NATS server about 300 bytes and makes publishing slower: at
 * 5,000 msg/s the ten minutes of before held 3 million ids per stream, about 900 MB each.
 */
export const TELEMETRY_DUPLICATE_WINDOW_MS = 2 * 60 * 1000;

export const Streams = {
  TELEMETRY_RAW_V1: {
    name: 'TELEMETRY_RAW_V1',
    subjects: [SubjectFilters.raw, SubjectFilters.status],
    maxAgeMs: 7 * DAY,
    maxBytes: 10 * GB,
    duplicateWindowMs: TELEMETRY_DUPLICATE_WINDOW_MS,
    description: 'Raw device messages as accepted by the bridge, and device status.',
  },
  TELEMETRY_DECODED_V1: {
    name: 'TELEMETRY_DECODED_V1',
    subjects: [SubjectFilters.decoded],
    maxAgeMs: 3 * DAY,
    maxBytes: 5 * GB,
    duplicateWindowMs: TELEMETRY_DUPLICATE_WINDOW_MS,
    description: 'Decoded, validated readings, one message per device and message.',
  },
  TELEMETRY_NORMALIZED_V1: {
    name: 'TELEMETRY_NORMALIZED_V1',
    subjects: [SubjectFilters.normalized],
    maxAgeMs: 3 * DAY,
    maxBytes: 5 * GB,
    duplicateWindowMs: TELEMETRY_DUPLICATE_WINDOW_MS,
    description: 'Canonical points in canonical units with quality flags.',
  },
  EVENTS_V1: {
    name: 'EVENTS_V1',
    subjects: [SubjectFilters.events],
    maxAgeMs: 30 * DAY,
    maxBytes: 1 * GB,
    duplicateWindowMs: 2 * 60 * 1000,
    description: 'Alarm events.',
  },
  COMMANDS_V1: {
    name: 'COMMANDS_V1',
    subjects: [SubjectFilters.commands],
    maxAgeMs: 1 * DAY,
    maxBytes: 1 * GB,
    duplicateWindowMs: 2 * 60 * 1000,
    description: 'Downlink commands to devices.',
  },
  CONFIG_V1: {
    name: 'CONFIG_V1',
    subjects: [SubjectFilters.config],
    maxAgeMs: 30 * DAY,
    maxBytes: 1 * GB,
    duplicateWindowMs: 2 * 60 * 1000,
    description: 'Configuration change notices.',
  },
  DLQ_V1: {
    name: 'DLQ_V1',
    subjects: [SubjectFilters.dlq],
    maxAgeMs: 30 * DAY,
    maxBytes: 5 * GB,
    duplicateWindowMs: 2 * 60 * 1000,
    description: 'Messages a stage could not process, with the reason; replayable.',
    allowDirect: true,
  },
} as const satisfies Record<string, StreamContract>;

export type StreamName = keyof typeof Streams;

export interface ConsumerContract {
  /** Durable name: the service's name, so replicas share the work. */
  durable: string;
  stream: StreamName;
  /** What nats-server delivers to the consumer: none for the whole stream. */
  filterSubjects: string[];
  /**
   * What the service handles, when it takes a stream with other subjects unfiltered: the rest
   * are acked unhandled, counted as `skipped` (another service consumes them). Unset: all.
   */
  handledSubjects?: string[];
  /** Deliveries before the message goes to the DLQ. */
  maxDeliver: number;
  ackWaitMs: number;
  /** Above the largest batch in flight, so fetches are never starved by unacked messages. */
  maxAckPending: number;
  /** The DLQ stage name written into `iot-dlq-stage`. */
  stage: string;
}

export const Consumers = {
  demux: {
    durable: 'demux',
    stream: 'TELEMETRY_RAW_V1',
    // The whole stream, device status too, which demux acks unhandled (the asset-worker's):
    // a filtered consumer behind while messages keep arriving has nats-server 2.9 recount
    // its pending messages as it delivers: at 8,000 msg/s 69-113 µs of nats-server's CPU per
    // message against 60-66 unfiltered, drains 1.2-2.5 times as long (docs/adr/0009).
    filterSubjects: [],
    handledSubjects: [SubjectFilters.raw],
    maxDeliver: 5,
    ackWaitMs: 30_000,
    maxAckPending: 5_000,
    stage: 'demux',
  },
  normalizer: {
    durable: 'normalizer',
    stream: 'TELEMETRY_DECODED_V1',
    filterSubjects: [SubjectFilters.decoded],
    maxDeliver: 5,
    ackWaitMs: 30_000,
    maxAckPending: 5_000,
    stage: 'normalizer',
  },
  tsdbWriter: {
    durable: 'tsdb-writer',
    stream: 'TELEMETRY_NORMALIZED_V1',
    filterSubjects: [SubjectFilters.normalized],
    // The database may be down for minutes: retry for long before giving up on a message.
    maxDeliver: 1_000,
    ackWaitMs: 60_000,
    maxAckPending: 20_000,
    stage: 'tsdb-writer',
  },
  mqttBridgeCommands: {
    durable: 'mqtt-bridge',
    stream: 'COMMANDS_V1',
    filterSubjects: [SubjectFilters.commands],
    maxDeliver: 10,
    ackWaitMs: 30_000,
    maxAckPending: 1_000,
    stage: 'mqtt-bridge-downlink',
  },
} as const satisfies Record<string, ConsumerContract>;

/** The JetStream key-value bucket holding the device registry: key = device id. */
export const DEVICE_REGISTRY_BUCKET = 'device-registry-v1';

/**
 * The KV bucket of tenants' normalizer profiles: key `<tenant>.<model>`, written by the config
 * service, watched by the normalizer. History keeps earlier versions for audit and rollback.
 */
export const NORMALIZER_PROFILES_BUCKET = 'normalizer-profiles-v1';
export const NORMALIZER_PROFILES_HISTORY = 20;

/** The key of a tenant's profile for a device model in NORMALIZER_PROFILES_BUCKET. */
export function normalizerProfileKey(tenant: string, model: string): string {
  return `${tenant}.${model}`;
}
