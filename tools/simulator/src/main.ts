/**
 * The device simulator: `node dist/tools/simulator/src/main.js --url mqtt://127.0.0.1:1883
 * --devices 100 --rate 10`. Each device is its own MQTT client (client id = device id) and
 * publishes Zenthos telemetry at QoS 1; the total rate is spread evenly over the devices.
 */
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { deviceIds, SimulatedSensors, zenthosPayload } from './readings';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
    devices: { type: 'string', default: '100' },
    first: { type: 'string', default: '1' },
    prefix: { type: 'string', default: 'demo-' },
    model: { type: 'string', default: 'zenthos-esp32' },
    rate: { type: 'string', default: '10', short: 'r' },
    duration: { type: 'string', default: '0' },
  },
});

const count = Number(values.devices);
const rate = Number(values.rate);
const durationS = Number(values.duration);
if (!(count > 0) || !(rate > 0)) {
  process.stderr.write('--devices and --rate must be positive numbers, e.g. --devices 100 --rate 10\n');
  process.exit(2);
}

const ids = deviceIds(values.prefix!, count, Number(values.first));
const clients: MqttClient[] = [];
let sent = 0;
let acked = 0;
const intervalMs = (count / rate) * 1000;

for (const [i, id] of ids.entries()) {
  const client = mqtt.connect(values.url!, {
    clientId: id,
    clean: true,
    reconnectPeriod: 1_000,
    protocolVersion: 4,
  });
  clients.push(client);
  const sensors = new SimulatedSensors();
  const topic = `zenthos/${values.model}/${id}/telemetry`;
  client.once('connect', () => {
    // Spread devices over the interval so the load is even, not in bursts.
    setTimeout(
      () => {
        const tick = () => {
          sent++;
          client.publish(topic, JSON.stringify(zenthosPayload(id, sensors)), { qos: 1 }, (err) => {
            if (!err) acked++;
          });
        };
        tick();
        setInterval(tick, intervalMs).unref();
      },
      (i * intervalMs) / count,
    ).unref();
  });
  client.on('error', (e) => process.stderr.write(`${id}: ${e.message}\n`));
}

const report = setInterval(
  () => process.stdout.write(`${new Date().toISOString()} sent=${sent} acked=${acked}\n`),
  10_000,
);
const stop = () => {
  clearInterval(report);
  process.stdout.write(`${new Date().toISOString()} final sent=${sent} acked=${acked}\n`);
  Promise.all(clients.map((c) => c.endAsync())).finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
if (durationS > 0) setTimeout(stop, durationS * 1000);
