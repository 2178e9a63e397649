import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { waitFor, sleep } from '@iot/testing';
import { mosquittoPub, startPipeline, type Pipeline } from './pipeline';

const fixture = JSON.parse(
  readFileSync(
    join(__dirname, '..', '..', '..', 'libs', 'demux-domain', 'src', 'fixtures', 'zenthos-telemetry.json'),
    'utf8',
  ),
);

const publish = (p: Pipeline, topic: string, message: string, clientId = 'demo-0001') =>
  mosquittoPub(p, topic, clientId, message);

describe('first path: MQTT to PostgreSQL through bridge, demux, normalizer, writer', () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await startPipeline([
      { device: 'demo-0001', tenant: 'demo', model: 'zenthos-esp32', state: 'active' },
    ]);
  });
  afterAll(async () => {
    await p?.stop();
  });

  const rowsOf = (device: string) =>
    p.pg.query<{ metric: string; value: number; unit: string; quality: string; ts: Date; tenant_id: string }>(
      `SELECT tenant_id, metric, value, unit, quality, ts FROM telemetry WHERE device_id = $1 ORDER BY metric`,
      [device],
    );

  it('stores a Zenthos message published with mosquitto_pub, once, though it was published twice', async () => {
    const timestamp = Math.floor(Date.now() / 1000);
    const message = JSON.stringify({ ...fixture, timestamp });
    publish(p, 'zenthos/zenthos-esp32/demo-0001/telemetry', message);
    publish(p, 'zenthos/zenthos-esp32/demo-0001/telemetry', message);
    await waitFor('six rows of demo-0001', async () => (await rowsOf('demo-0001')).length >= 6, 20_000);
    // Give a duplicate every chance to arrive before asserting there is none.
    await sleep(1_500);
    const rows = await rowsOf('demo-0001');
    expect(
      rows.map(({ metric, value, unit, quality, tenant_id }) => ({
        metric,
        value,
        unit,
        quality,
        tenant_id,
      })),
    ).toEqual([
      { metric: 'battery_voltage', value: 3.91, unit: 'V', quality: 'good', tenant_id: 'demo' },
      { metric: 'humidity', value: 64, unit: '%', quality: 'good', tenant_id: 'demo' },
      { metric: 'light_level', value: 18250, unit: 'lx', quality: 'good', tenant_id: 'demo' },
      { metric: 'signal_strength', value: -67, unit: 'dB[mW]', quality: 'good', tenant_id: 'demo' },
      { metric: 'soil_moisture', value: 42.5, unit: '%', quality: 'good', tenant_id: 'demo' },
      { metric: 'temperature', value: 21.3, unit: 'Cel', quality: 'good', tenant_id: 'demo' },
    ]);
    expect(rows.every((r) => r.ts.getTime() === timestamp * 1000)).toBe(true);
  });

  it('dead-letters an invalid payload and an unknown device with their reasons, and goes on', async () => {
    const timestamp = Math.floor(Date.now() / 1000);
    publish(
      p,
      'zenthos/zenthos-esp32/demo-0001/telemetry',
      JSON.stringify({ ...fixture, message_id: 'not-a-uuid', timestamp }),
    );
    publish(
      p,
      'zenthos/zenthos-esp32/ghost-9/telemetry',
      JSON.stringify({ ...fixture, device_id: 'ghost-9', timestamp }),
      'ghost-9',
    );
    const good = {
      ...fixture,
      message_id: '11111111-2222-4333-8444-555555555555',
      timestamp: timestamp + 60,
    };
    publish(p, 'zenthos/zenthos-esp32/demo-0001/telemetry', JSON.stringify(good));

    const nc = await connect({ servers: p.nats.urls });
    try {
      const jsm = await jetstreamManager(nc);
      await waitFor(
        'two DLQ messages',
        async () => (await jsm.streams.info('DLQ_V1')).state.messages >= 2,
        20_000,
      );
      const js = jetstream(nc);
      const reasons: Record<string, string> = {};
      for (let seq = 1; seq <= 2; seq++) {
        const m = await jsm.streams.getMessage('DLQ_V1', { seq });
        reasons[m!.subject] = `${m!.header.get('iot-dlq-reason')} | ${m!.header.get('iot-dlq-detail')}`;
      }
      void js;
      expect(reasons['iot.dlq.v1.demux.demo']).toMatch(
        /^invalid-payload \| zenthos telemetry: field \/message_id must match format "uuid"/,
      );
      expect(reasons['iot.dlq.v1.mqtt-bridge._unknown']).toMatch(
        /^unknown-device \| device "ghost-9" is not registered/,
      );
    } finally {
      await nc.close();
    }
    // The good message after the bad ones is stored: nothing was held up behind them. Its
    // battery, light and signal levels equal the first message's, so the deadband holds
    // those back; the other three are stored.
    const later = async () =>
      (await rowsOf('demo-0001'))
        .filter((r) => r.ts.getTime() === (timestamp + 60) * 1000)
        .map((r) => r.metric);
    await waitFor('the good message after the poison ones', async () => (await later()).length >= 3, 20_000);
    await sleep(500);
    expect(await later()).toEqual(['humidity', 'soil_moisture', 'temperature']);
  });

  it('serves the iot_* metrics with live values', async () => {
    const bridge = p.service('mqtt-bridge');
    const text = await (await fetch(`${bridge.url}/metrics`)).text();
    expect(text).toMatch(/iot_messages_received_total\{stage="mqtt-bridge",service="mqtt-bridge"\} [1-9]/);
    const writer = p.service('tsdb-writer');
    const ready = await fetch(`${writer.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({
      status: 'ready',
      checks: { nats: true, consumers: true, database: true },
    });
  });
});
