import { randomUUID } from 'node:crypto';
import { DeviceClient } from '@iot/device-client';

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

/**
 * A canonical device payload with five readings, as the simulator sends (about 300 bytes).
 * Written as a template: the same JSON as `JSON.stringify` of the object (its spec), at a
 * fifth of the CPU, which the load generator takes from the cores it measures.
 */
export function canonicalMessage(ts: number, seed: number): string {
  return (
    `{"message_id":"${randomUUID()}","ts":${ts},"readings":{` +
    `"soil_moisture":{"value":${30 + (seed % 40)},"unit":"%"},` +
    `"temperature":{"value":${15 + (seed % 20) / 2},"unit":"Cel"},` +
    `"humidity":{"value":${40 + (seed % 30)},"unit":"%"},` +
    `"light_level":{"value":${10_000 + (seed % 5_000)},"unit":"lx"},` +
    `"battery_voltage":{"value":${3.7 + (seed % 40) / 100},"unit":"V"}}}`
  );
}

/**
 * Floods the broker: `devices` publish `n` canonical messages in all at QoS 1, each with up to
 * `window` PUBACKs outstanding; resolves when every PUBACK has come. Each device is a lean
 * connection (`@iot/device-client`), as the simulator's: an MQTT.js client per device cost
 * the load generator 12-14 µs of CPU per message here, against 7-8 (2026-12-06), taken from
 * the cores the services under test run on.
 */
export async function mqttFlood(
  url: string,
  devices: string[],
  n: number,
  window = 64,
  tsBase = Date.now(),
): Promise<{ ms: number }> {
  const errors: string[] = [];
  const clients = devices.map(
    (id) => new DeviceClient({ url, clientId: id, clean: true, onError: (m) => errors.push(`${id}: ${m}`) }),
  );
  try {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(clients.map((c) => c.ready())),
      new Promise((_, reject) => {
        timer = setTimeout(() => {
          const why = errors.slice(0, 3).join('; ') || 'no error was reported';
          reject(new Error(`the flood's devices did not all connect to ${url} in 30 s: ${why}`));
        }, 30_000);
      }),
    ]).finally(() => clearTimeout(timer));
    const t0 = performance.now();
    await Promise.all(
      clients.map((c, k) => {
        const share = Math.floor(n / clients.length) + (k < n % clients.length ? 1 : 0);
        return publishWindowed(c, `devices/${devices[k]}/telemetry`, share, window, tsBase);
      }),
    );
    return { ms: performance.now() - t0 };
  } finally {
    for (const c of clients) c.end();
  }
}

/**
 * `count` canonical messages from one device, up to `window` of them awaiting their PUBACK.
 * Callbacks rather than `windowed` with a promise per message: that cost the load generator
 * 7.7-8.6 µs per message against 6.5-7.5 (2026-12-06 22:05, four interleaved pairs).
 */
function publishWindowed(
  c: DeviceClient,
  topic: string,
  count: number,
  window: number,
  tsBase: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let acked = 0;
    const settled = (err?: Error) => {
      if (err) reject(err);
      else if (++acked === count) resolve();
      else if (sent < count) one();
    };
    const one = () => {
      const i = sent++;
      c.publish(topic, canonicalMessage(tsBase + i, i), settled);
    };
    if (count === 0) resolve();
    while (sent < Math.min(window, count)) one();
  });
}
