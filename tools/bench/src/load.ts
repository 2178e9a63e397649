import { randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';

/** Runs `n` tasks with at most `window` in flight: the way to publish with outstanding acks. */
export async function windowed(
  n: number,
  window: number,
  task: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(window, n) }, worker));
}

export const BENCH_TENANT = 'bench';
/** The five sensors of a bench message (`canonicalMessage`), one row each in the table. */
export const BENCH_METRICS = ['soil_moisture', 'temperature', 'humidity', 'light_level', 'battery_voltage'];
export const METRICS_PER_MESSAGE = BENCH_METRICS.length;

export function benchDevices(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `bench-${String(i + 1).padStart(5, '0')}`);
}

/** A canonical device payload with five readings, as the simulator sends (about 300 bytes). */
export function canonicalMessage(ts: number, seed: number): string {
  return JSON.stringify({
    message_id: randomUUID(),
    ts,
    readings: {
      soil_moisture: { value: 30 + (seed % 40), unit: '%' },
      temperature: { value: 15 + (seed % 20) / 2, unit: 'Cel' },
      humidity: { value: 40 + (seed % 30), unit: '%' },
      light_level: { value: 10_000 + (seed % 5_000), unit: 'lx' },
      battery_voltage: { value: 3.7 + (seed % 40) / 100, unit: 'V' },
    },
  });
}

/**
 * Floods the broker: `clients` devices publish `n` canonical messages in all at QoS 1, each
 * with up to `window` PUBACKs outstanding; resolves when every PUBACK has come.
 */
export async function mqttFlood(
  url: string,
  devices: string[],
  n: number,
  window = 64,
  tsBase = Date.now(),
): Promise<{ ms: number }> {
  const clients: MqttClient[] = await Promise.all(
    devices.map((id) => mqtt.connectAsync(url, { clientId: id, clean: true, reconnectPeriod: 500 })),
  );
  try {
    const t0 = performance.now();
    await Promise.all(
      clients.map((c, k) => {
        const share = Math.floor(n / clients.length) + (k < n % clients.length ? 1 : 0);
        const topic = `devices/${devices[k]}/telemetry`;
        return windowed(share, window, (i) =>
          c.publishAsync(topic, canonicalMessage(tsBase + i, i), { qos: 1 }),
        );
      }),
    );
    return { ms: performance.now() - t0 };
  } finally {
    await Promise.all(clients.map((c) => c.endAsync()));
  }
}
