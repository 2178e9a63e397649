import { randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';

export interface PlannedMessage {
  device: string;
  payload: string;
  kind: 'valid' | 'duplicate' | 'invalid';
  /** For invalid messages: the field the DLQ reason must name. */
  field?: string;
}

const INVALID: Array<{ field: string; make: (device: string, ts: number) => string }> = [
  {
    field: '/message_id',
    make: (d, ts) =>
      JSON.stringify({ message_id: 'not-a-uuid', device_id: d, timestamp: ts, sensors: { temperature: 1 } }),
  },
  {
    field: '/sensors/temperature',
    make: (d, ts) =>
      JSON.stringify({
        message_id: randomUUID(),
        device_id: d,
        timestamp: ts,
        sensors: { temperature: 'hot' },
      }),
  },
  {
    field: '/sensors',
    make: (d, ts) => JSON.stringify({ message_id: randomUUID(), device_id: d, timestamp: ts }),
  },
  { field: '(root)', make: () => 'not json at all' },
];

/**
 * `perDevice` Zenthos messages for each device, one second apart, with every `every`-th
 * message a resend of the previous one (same message id) and every `every`-th (offset)
 * an invalid payload.
 */
export function planMessages(
  devices: string[],
  perDevice: number,
  startS: number,
  every = 100,
): PlannedMessage[] {
  const out: PlannedMessage[] = [];
  let n = 0;
  for (const device of devices) {
    let last: string | undefined;
    for (let i = 0; i < perDevice; i++, n++) {
      const ts = startS + i;
      if (n % every === 50 && last) out.push({ device, payload: last, kind: 'duplicate' });
      else if (n % every === 99) {
        const bad = INVALID[Math.floor(n / every) % INVALID.length]!;
        out.push({ device, payload: bad.make(device, ts), kind: 'invalid', field: bad.field });
      } else {
        last = JSON.stringify({
          message_id: randomUUID(),
          device_id: device,
          timestamp: ts,
          sensors: { temperature: 15 + (i % 10), humidity: 40 + (i % 20) },
        });
        out.push({ device, payload: last, kind: 'valid' });
      }
    }
  }
  return out;
}

/** Publishes the plan at QoS 1, each device over its own MQTT connection, waiting for every PUBACK. */
export async function publishPlan(
  url: string,
  plan: PlannedMessage[],
  model = 'zenthos-esp32',
  ratePerS?: number,
): Promise<void> {
  const byDevice = new Map<string, PlannedMessage[]>();
  for (const m of plan) byDevice.set(m.device, [...(byDevice.get(m.device) ?? []), m]);
  const clients: MqttClient[] = [];
  try {
    await Promise.all(
      [...byDevice.entries()].map(async ([device, messages]) => {
        const client = await mqtt.connectAsync(url, { clientId: device, clean: true, reconnectPeriod: 500 });
        clients.push(client);
        const gapMs = ratePerS ? (byDevice.size / ratePerS) * 1000 : 0;
        for (const m of messages) {
          const sent = client.publishAsync(`zenthos/${model}/${device}/telemetry`, m.payload, { qos: 1 });
          if (gapMs) {
            await new Promise((r) => setTimeout(r, gapMs));
            void sent;
          } else await sent;
        }
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.endAsync()));
  }
}
