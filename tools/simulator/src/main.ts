/**
 * The device simulator and load generator:
 *   node dist/tools/simulator/src/main.js --url mqtt://127.0.0.1:1883 --devices 100 --rate 10
 * Each device is its own MQTT client (client id = device id; with --cert-dir, its own
 * certificate) and publishes telemetry with five sensors and a unique message_id at QoS 1;
 * the total rate is spread round-robin over the devices. With --record, every message's
 * device, message id, device timestamp, when it left and when its PUBACK came are written as
 * CSV at the end, so a benchmark can count exactly what was lost or duplicated.
 */
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DeviceClient } from '@iot/device-client';
import {
  canonicalPayload,
  deviceIds,
  dueAtMs,
  dueMessages,
  SimulatedSensors,
  zenthosPayload,
} from './readings';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
    devices: { type: 'string', default: '100' },
    first: { type: 'string', default: '1' },
    prefix: { type: 'string', default: 'demo-' },
    model: { type: 'string', default: 'zenthos-esp32' },
    format: { type: 'string', default: 'zenthos' },
    rate: { type: 'string', default: '10', short: 'r' },
    duration: { type: 'string', default: '0' },
    messages: { type: 'string', default: '0' },
    record: { type: 'string' },
    ca: { type: 'string' },
    persistent: { type: 'boolean', default: false },
    'poison-every': { type: 'string', default: '0' },
    'cert-dir': { type: 'string' },
  },
});

const count = Number(values.devices);
const rate = Number(values.rate);
const durationS = Number(values.duration);
const maxMessages = Number(values.messages) || Infinity;
const format = values.format;
const poisonEvery = Number(values['poison-every']);
if (!(count > 0) || !(rate > 0)) {
  process.stderr.write('--devices and --rate must be positive numbers, e.g. --devices 100 --rate 10\n');
  process.exit(2);
}
if (!/^mqtts?:\/\/[^/]+/.test(values.url!)) {
  process.stderr.write(`--url ${values.url}: use mqtt://host:port, or mqtts://host:port with --cert-dir\n`);
  process.exit(2);
}
if (format !== 'zenthos' && format !== 'canonical') {
  process.stderr.write(`--format ${format}: use zenthos (epoch-second time) or canonical (ms time)\n`);
  process.exit(2);
}

interface Device {
  id: string;
  client: DeviceClient;
  topic: string;
  sensors: SimulatedSensors;
  /** The last device timestamp used: a device never sends two readings of the same time. */
  lastTs: number;
}

const ids = deviceIds(values.prefix!, count, Number(values.first));
const devices: Device[] = ids.map((id) => {
  const client = new DeviceClient({
    url: values.url!,
    clientId: id,
    // --persistent: a session that outlives a broker restart; unacknowledged QoS 1 messages
    // are sent again on reconnect, as a real device does.
    clean: !values.persistent,
    tls: values['cert-dir']
      ? {
          ca: values.ca ? readFileSync(values.ca) : undefined,
          cert: readFileSync(join(values['cert-dir'], `${id}.crt`)),
          key: readFileSync(join(values['cert-dir'], `${id}.key`)),
        }
      : undefined,
    onError: (message) => process.stderr.write(`${id}: ${message}\n`),
  });
  const topic = format === 'zenthos' ? `zenthos/${values.model}/${id}/telemetry` : `devices/${id}/telemetry`;
  return { id, client, topic, sensors: new SimulatedSensors(), lastTs: 0 };
});

// What was sent, for --record: columns of parallel arrays, cheap at a million messages.
const sentDevice: number[] = [];
const sentId: string[] = [];
const sentTs: number[] = [];
const sentAt: number[] = [];
const ackedAt: number[] = [];
let sent = 0;
let acked = 0;
let failed = 0;
let next = 0;
let startedAt = 0;
let ticker: NodeJS.Timeout | undefined;

/**
 * Sends the next message, stamped with the time it was due (`dueAtMs`), not when it leaves
 * (`now`, the tick's time, recorded apart: the difference is the simulator's own lag).
 */
function publishOne(dueAt: number, now: number): void {
  const index = next++ % devices.length;
  const d = devices[index]!;
  // Zenthos time is in seconds: such a device sends at most once a second to be stored apart.
  const ts = (d.lastTs = Math.max(dueAt, d.lastTs + (format === 'zenthos' ? 1000 : 1)));
  const n = sent++;
  // --poison-every N: every Nth message breaks the schema (a reading that is not a number).
  const poison = poisonEvery > 0 && n % poisonEvery === poisonEvery - 1;
  const body = poison
    ? { message_id: `poison-${n}`, ts, readings: { temperature: 'hot' } }
    : format === 'zenthos'
      ? zenthosPayload(d.id, d.sensors, ts)
      : canonicalPayload(d.sensors, ts);
  if (values.record) {
    sentDevice.push(index);
    sentId.push(body.message_id);
    sentTs.push(format === 'zenthos' ? Math.floor(ts / 1000) * 1000 : ts);
    sentAt.push(now);
    ackedAt.push(0);
  }
  d.client.publish(d.topic, JSON.stringify(body), (err) => {
    if (err) failed++;
    else {
      acked++;
      if (values.record) ackedAt[n] = Date.now();
    }
  });
}

function tick(): void {
  const now = Date.now();
  const due = dueMessages(rate, now - startedAt, sent, maxMessages);
  for (let i = 0; i < due; i++) publishOne(startedAt + dueAtMs(rate, sent), now);
  if (sent >= maxMessages || (durationS > 0 && now - startedAt >= durationS * 1000)) void stop();
}

async function start(): Promise<void> {
  await Promise.all(devices.map((d) => d.client.ready()));
  process.stdout.write(
    `${new Date().toISOString()} connected ${devices.length} devices; sending ${rate} msg/s\n`,
  );
  startedAt = Date.now();
  ticker = setInterval(tick, 5);
}

const report = setInterval(
  () => process.stdout.write(`${new Date().toISOString()} sent=${sent} acked=${acked} failed=${failed}\n`),
  10_000,
);

let stopping: Promise<void> | undefined;
function stop(): Promise<void> {
  return (stopping ??= (async () => {
    clearInterval(ticker);
    const sendingMs = Date.now() - startedAt;
    // Wait (a while) for the PUBACKs still due: unacked messages count as not delivered.
    const deadline = Date.now() + 30_000;
    while (acked + failed < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    clearInterval(report);
    // Printed as soon as the PUBACKs are in, before the record is written: a benchmark times
    // the pipeline's drain from here, not from the simulator's exit.
    process.stdout.write(
      `${new Date().toISOString()} final sent=${sent} acked=${acked} failed=${failed} sending_ms=${sendingMs} started_at_ms=${startedAt}\n`,
    );
    if (values.record) {
      const out = createWriteStream(values.record);
      out.write('device,message_id,ts_ms,sent_at_ms,acked_at_ms\n');
      for (let i = 0; i < sentId.length; i++)
        out.write(`${devices[sentDevice[i]!]!.id},${sentId[i]},${sentTs[i]},${sentAt[i]},${ackedAt[i]}\n`);
      await new Promise<void>((r) => out.end(() => r()));
      process.stdout.write(`${new Date().toISOString()} record written to ${values.record}\n`);
    }
    for (const d of devices) d.client.end();
    await new Promise((r) => setTimeout(r, 100)); // the DISCONNECTs' turn to leave
    process.exit(0);
  })());
}

process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
void start();
