import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { mosquittoPub, startPipeline, type Pipeline } from './pipeline';

const fixtures = join(__dirname, '..', '..', '..', 'libs', 'demux-domain', 'src', 'fixtures');
const fixture = (name: string) => JSON.parse(readFileSync(join(fixtures, name), 'utf8'));

function publish(p: Pipeline, topic: string, clientId: string, payload: unknown) {
  mosquittoPub(p, topic, clientId, JSON.stringify(payload));
}

// Both places the normalizing can run (docs/adr/0006) must store the same rows.
describe.each([
  ['by the normalizer service', false],
  ['in demux (NORMALIZE_IN_DEMUX)', true],
])('each payload format, from MQTT to rows with canonical units and quality, normalized %s', (_, inline) => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await startPipeline(
      [
        { device: 'z-1', tenant: 'farm', model: 'zenthos-esp32', state: 'active' },
        { device: 'c-1', tenant: 'farm', model: 'generic', state: 'active' },
        { device: 's-1', tenant: 'farm', model: 'generic', state: 'active' },
        { device: 'gw-1', tenant: 'farm', model: 'gateway', state: 'active' },
        { device: 'child-1', tenant: 'farm', model: 'zenthos-esp32', state: 'active' },
        { device: 'child-2', tenant: 'farm', model: 'zenthos-esp32', state: 'active' },
        { device: 'u-1', tenant: 'farm', model: 'generic', state: 'active' },
        { device: 'n-1', tenant: 'farm', model: 'generic', state: 'active' },
      ],
      { serviceEnv: { NORMALIZE_IN_DEMUX: String(inline) } },
    );
  });
  afterAll(async () => {
    await p?.stop();
  });

  const rows = (device: string) =>
    p.pg.query<{ metric: string; value: number; unit: string; quality: string; ts: Date }>(
      `SELECT metric, value, unit, quality, ts FROM telemetry WHERE tenant_id = 'farm' AND device_id = $1 ORDER BY ts, metric`,
      [device],
    );
  const stored = async (device: string, n: number) =>
    p.waitFor(`${n} rows of ${device}`, async () => (await rows(device)).length >= n, 20_000);
  const nowS = Math.floor(Date.now() / 1000);

  it('Zenthos: each sensor in its unit; a reading far out of range is kept and flagged, one just out is clamped', async () => {
    const payload = { ...fixture('zenthos-telemetry.json'), device_id: 'z-1', timestamp: nowS };
    payload.sensors = { ...payload.sensors, humidity: 103, soil_moisture: 250 };
    publish(p, 'zenthos/zenthos-esp32/z-1/telemetry', 'z-1', payload);
    await stored('z-1', 6);
    const byMetric = Object.fromEntries(
      (await rows('z-1')).map((r) => [r.metric, [r.value, r.unit, r.quality]]),
    );
    expect(byMetric).toEqual({
      battery_voltage: [3.91, 'V', 'good'],
      humidity: [100, '%', 'clamped'],
      light_level: [18250, 'lx', 'good'],
      signal_strength: [-67, 'dB[mW]', 'good'],
      soil_moisture: [250, '%', 'out-of-range'],
      temperature: [21.3, 'Cel', 'good'],
    });
  });

  it('canonical: UCUM units converted (degF to Cel, mV to V), ISO time kept to the millisecond', async () => {
    const payload = { ...fixture('canonical-telemetry.json'), ts: new Date(nowS * 1000 + 250).toISOString() };
    publish(p, 'devices/c-1/telemetry', 'c-1', payload);
    await stored('c-1', 3);
    const r = await rows('c-1');
    expect(r.map(({ metric, value, unit, quality }) => ({ metric, value, unit, quality }))).toEqual([
      { metric: 'humidity', value: 55.2, unit: '%', quality: 'good' },
      { metric: 'supply_voltage', value: 3.3, unit: 'V', quality: 'good' },
      { metric: 'temperature', value: 21.388888889, unit: 'Cel', quality: 'good' },
    ]);
    expect(r[0]!.ts.getTime()).toBe(nowS * 1000 + 250);
  });

  it('SenML: base name, time and unit resolved; two times give two rows of the same metric', async () => {
    const pack = fixture('senml-pack.json');
    pack[0] = { ...pack[0], bn: 'urn:dev:s-1:', bt: nowS - 120 };
    publish(p, 'devices/s-1/telemetry', 's-1', pack);
    await stored('s-1', 4);
    const r = await rows('s-1');
    expect(
      r.map(({ metric, value, unit, ts }) => [metric, value, unit, ts.getTime() / 1000 - (nowS - 120)]),
    ).toEqual([
      ['battery_voltage', 3.88, 'V', 0],
      ['humidity', 61, '%', 0],
      ['temperature', 21.7, 'Cel', 0],
      ['temperature', 21.9, 'Cel', 60],
    ]);
  });

  it("gateway batch: each child's readings stored under the child", async () => {
    const batch = fixture('gateway-batch.json').map((e: Record<string, unknown>, i: number) => ({
      ...e,
      device_id: `child-${i + 1}`,
      ts: (nowS - 60) * 1000,
    }));
    publish(p, 'devices/gw-1/telemetry', 'gw-1', batch);
    await stored('child-1', 2);
    await stored('child-2', 2);
    expect((await rows('child-1')).map((r) => [r.metric, r.value, r.unit])).toEqual([
      ['soil_moisture', 38.1, '%'],
      ['temperature', 20.9, 'Cel'],
    ]);
    expect((await rows('gw-1')).length).toBe(0);
  });

  it("a reading in a unit that cannot be converted goes to the DLQ as the normalizer's, under the decoded subject; the rest is stored", async () => {
    publish(p, 'devices/u-1/telemetry', 'u-1', {
      message_id: '0b0e0c0d-1111-4222-8333-444455556666',
      ts: new Date(nowS * 1000).toISOString(),
      readings: { humidity: 40, temperature: { value: 3, unit: 'furlong' } },
    });
    await stored('u-1', 1);
    const nc = await connect({ servers: p.nats.urls });
    try {
      const jsm = await jetstreamManager(nc);
      const dlq = () => jsm.direct.getMessage('DLQ_V1', { last_by_subj: 'iot.dlq.v1.normalizer.farm' });
      await p.waitFor('the rejected reading in the DLQ', async () => !!(await dlq()), 20_000);
      const m = (await dlq())!;
      expect(m.header.get('iot-dlq-reason')).toBe('invalid-payload');
      expect(m.header.get('iot-dlq-detail')).toMatch(/furlong/);
      expect(m.header.get('iot-original-subject')).toBe('iot.decoded.v1.farm.u-1');
      expect(m.json<{ readings: Array<{ metric: string }> }>().readings.map((r) => r.metric)).toEqual([
        'temperature',
      ]);
      // Normalized in demux, no message took the extra hop through iot.decoded.v1.
      const decoded = (await jsm.streams.info('TELEMETRY_DECODED_V1')).state.messages;
      if (inline) expect(decoded).toBe(0);
      else expect(decoded).toBeGreaterThan(0);
    } finally {
      await nc.close();
    }
    expect((await rows('u-1')).map((r) => [r.metric, r.value, r.unit])).toEqual([['humidity', 40, '%']]);
  });
  it("a NUL in a unit, which PostgreSQL would refuse, is refused by demux naming the field; the device's other messages are stored", async () => {
    // An unknown metric is kept as sent, unit and all, and no PostgreSQL text may hold a NUL:
    // demux refuses it, so the error names the field instead of a database error at the writer
    // (whose own isolation of a refused message is in the writer's int spec).
    const message = (id: string, s: number, readings: Record<string, unknown>) =>
      publish(p, 'devices/n-1/telemetry', 'n-1', {
        message_id: id,
        ts: new Date(s * 1000).toISOString(),
        readings,
      });
    message('0b0e0c0d-2222-4222-8333-444455556666', nowS - 2, {
      humidity: 41,
      mystery: { value: 1, unit: 'x\u0000y' },
    });
    message('0b0e0c0d-3333-4222-8333-444455556666', nowS - 1, { humidity: 42 });
    await stored('n-1', 1);
    const nc = await connect({ servers: p.nats.urls });
    try {
      const jsm = await jetstreamManager(nc);
      const dlq = () => jsm.direct.getMessage('DLQ_V1', { last_by_subj: 'iot.dlq.v1.demux.farm' });
      await p.waitFor('the refused message in the DLQ', async () => !!(await dlq()), 20_000);
      const m = (await dlq())!;
      expect(m.header.get('iot-dlq-reason')).toBe('invalid-payload');
      expect(m.header.get('iot-dlq-detail')).toMatch(
        /field \/readings\/mystery\/unit holds a control character/,
      );
      expect(m.header.get('iot-original-subject')).toBe('iot.raw.v1.farm.n-1');
      expect(
        await jsm.direct
          .getMessage('DLQ_V1', { last_by_subj: 'iot.dlq.v1.tsdb-writer.farm' })
          .catch(() => null),
      ).toBeFalsy();
    } finally {
      await nc.close();
    }
    expect((await rows('n-1')).map((r) => [r.metric, r.value])).toEqual([['humidity', 42]]);
  });
});
