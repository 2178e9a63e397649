import { num, str } from '@iot/config';
import { hostname } from 'node:os';

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
    desc: 'Shared-subscription group; replicas in one group split the load',
  }),
  MQTT_CONNECTIONS: num({
    default: 4,
    desc: 'MQTT connections per process (each settles its messages in order)',
  }),
  MQTT_CA_FILE: str({ default: '', desc: 'CA certificate file for mqtts://' }),
  MQTT_CERT_FILE: str({ default: '', desc: 'Client certificate file for mqtts://' }),
  MQTT_KEY_FILE: str({ default: '', desc: 'Client key file for mqtts://' }),
  MAX_PAYLOAD_BYTES: num({ default: 64 * 1024, desc: 'Larger messages go to the DLQ as payload-too-large' }),
};
