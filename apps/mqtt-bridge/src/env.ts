import { bool, num, share, str } from '@iot/config';
import { parseRateLimit, rateLimitsByModel } from '@iot/mqtt-bridge-domain';
import { makeValidator, type CleanedEnv } from 'envalid';
import { hostname } from 'node:os';

// Malformed limits stop the bridge at start, with the variable named and the form expected.
const rateLimit = makeValidator((s: string) => (parseRateLimit(s), s));
const rateLimitsPerModel = makeValidator((s: string) => (rateLimitsByModel(s, { ratePerS: 1, burst: 1 }), s));

export const bridgeEnv = {
  MQTT_URL: str({
    default: 'mqtt://127.0.0.1:1883',
    desc: 'Broker URL: mqtt://host:1883 or mqtts://host:8883',
  }),
  MQTT_USERNAME: str({ default: '', desc: "The bridge's service account on the broker" }),
  MQTT_PASSWORD: str({ default: '', desc: 'Password of the service account' }),
  MQTT_CLIENT_ID: str({
    default: `mqtt-bridge-${hostname()}`,
    desc: 'Client id prefix; stable across restarts so the persistent session survives',
  }),
  MQTT_SHARE_GROUP: str({
    default: 'bridge',
    desc: 'Shared-subscription group; replicas in one group split the load. Empty: plain subscriptions for one bridge with MQTT_CONNECTIONS=1 (what survives a mosquitto 2.0 restart)',
  }),
  MQTT_CONNECTIONS: num({
    default: 4,
    desc: 'MQTT connections per process (each settles its messages in order)',
  }),
  RAW_PACKS: bool({
    default: true,
    desc: 'Telemetry goes to the raw stream in packs, one per tenant (docs/adr/0011); false: each message alone. Deploy demux before a bridge that packs: an older demux dead-letters the packs it cannot read',
  }),
  RAW_PACK_LINGER_MS: num({
    default: 1,
    desc: 'With RAW_PACKS, how long a telemetry message may wait (ms) for others to share its pack; a message alone in its wait goes alone. Once 32 messages wait (or MQTT_WINDOW, if smaller), they leave at the end of the event-loop turn',
  }),
  MQTT_WINDOW: num({
    default: 32,
    desc: 'QoS 1 messages per connection on their way to JetStream at once (Receive Maximum); 1 = one at a time',
  }),
  MQTT_CA_FILE: str({ default: '', desc: 'CA certificate file for mqtts://' }),
  MQTT_CERT_FILE: str({ default: '', desc: 'Client certificate file for mqtts://' }),
  MQTT_KEY_FILE: str({ default: '', desc: 'Client key file for mqtts://' }),
  RATE_LIMIT: rateLimit({
    default: '1/20',
    desc: 'Telemetry messages per device: RATE/BURST, e.g. 1/20 = 1 per second sustained, 20 at once',
  }),
  RATE_LIMITS_BY_MODEL: rateLimitsPerModel({
    default: '',
    desc: 'Per device model, overriding RATE_LIMIT: MODEL=RATE/BURST,..., e.g. gateway=50/500',
  }),
  INGEST_REFUSE_RATIO: share({
    default: 0.9,
    desc: "HTTP ingest answers 503 (Retry-After) while demux is behind by more than this share of the raw stream's byte limit, and takes messages again below four fifths of it: past the limit the raw stream would discard the oldest unprocessed messages, so a device keeps what it would have lost. MQTT is not refused (the broker's queue holds far less). 0 turns it off",
  }),
  MAX_PAYLOAD_BYTES: num({ default: 64 * 1024, desc: 'Larger messages go to the DLQ as payload-too-large' }),
};

// NATS_STREAM_REPLICAS is one of the runtime's common variables (service-runtime).
export type BridgeEnv = CleanedEnv<typeof bridgeEnv> & {
  NATS_STREAM_REPLICAS: number;
  SHUTDOWN_GRACE_MS: number;
};
