import { DEVICE_REGISTRY_BUCKET, newDeviceKey, type DeviceRecord } from '@iot/contracts';
import { connectNats, putDeviceRecords } from '@iot/messaging';
import { createLogger } from '@iot/observability';
import { sleep, waitFor } from '@iot/testing';
import { deviceWithKey, startPipeline, type Pipeline } from './pipeline';

const { key: pumpKey, record: pump } = deviceWithKey('pump-1', 'plant');
const { key: retiredKey, record: retired } = deviceWithKey('pump-2', 'plant', 'disabled');

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies, checked by the assertions
const json = (res: Response): Promise<any> => res.json();

describe('HTTP ingest and tenant normalizer profiles', () => {
  let p: Pipeline;
  let bridge: string;
  let config: string;
  beforeAll(async () => {
    p = await startPipeline([pump, retired], { withControlPlane: true });
    bridge = p.service('mqtt-bridge').url;
    config = p.service('config').url;
  });
  afterAll(async () => {
    await p?.stop();
  });

  const send = (
    body: string | object,
    headers: Record<string, string> = { authorization: `Bearer ${pumpKey}` },
  ) =>
    fetch(`${bridge}/v1/telemetry`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const rows = (device: string) =>
    p.pg.query<{ metric: string; value: number; unit: string; quality: string }>(
      `SELECT metric, value, unit, quality FROM telemetry WHERE device_id = $1 ORDER BY ts, metric`,
      [device],
    );

  it('stores a message sent with a device key once, however often it is resent', async () => {
    const msg = {
      message_id: 'h-1',
      ts: new Date().toISOString(),
      readings: { pressure: { value: 2.5, unit: 'bar' } },
    };
    for (let i = 0; i < 3; i++) {
      const res = await send(msg);
      expect(res.status).toBe(202);
      expect(await res.json()).toMatchObject({ accepted: true, device: 'pump-1' });
    }
    // The same key in the X-Device-Key header, with a content type the bridge does not parse.
    const later = { ...msg, message_id: 'h-2', ts: new Date(Date.parse(msg.ts) + 1000).toISOString() };
    const res = await send(JSON.stringify(later), {
      'x-device-key': pumpKey,
      'content-type': 'application/senml+json; charset=utf-8',
    });
    expect(res.status).toBe(202);
    await waitFor('two rows of pump-1', async () => (await rows('pump-1')).length >= 2, 20_000);
    await sleep(1_000);
    expect(await rows('pump-1')).toEqual([
      { metric: 'pressure', value: 250_000, unit: 'Pa', quality: 'good' },
      { metric: 'pressure', value: 250_000, unit: 'Pa', quality: 'good' },
    ]);
  });

  it('refuses a missing, unknown or disabled device key, and an oversized body, with a problem document', async () => {
    const msg = { message_id: 'x', ts: new Date().toISOString(), readings: { pressure: 1 } };
    const cases: Array<[string, Response, number, RegExp]> = [
      ['no key', await send(msg, {}), 401, /no device key/],
      [
        'unknown key',
        await send(msg, { authorization: `Bearer ${newDeviceKey()}` }),
        401,
        /unknown or revoked/,
      ],
      ['malformed key', await send(msg, { authorization: 'Bearer hunter2' }), 401, /unknown or revoked/],
      [
        'disabled device',
        await send(msg, { authorization: `Bearer ${retiredKey}` }),
        403,
        /pump-2" is disabled/,
      ],
      [
        '65 KiB body',
        await send({ ...msg, pad: 'x'.repeat(65 * 1024) }),
        413,
        /exceeds the limit of 65536 bytes/,
      ],
      ['empty body', await send(''), 400, /body is empty/],
    ];
    for (const [what, res, status, detail] of cases) {
      expect({ what, status: res.status }).toEqual({ what, status });
      expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
      expect((await json(res)).detail).toMatch(detail);
    }
  });

  const putRecords = async (records: DeviceRecord[]) => {
    const nc = await connectNats({
      servers: p.nats.urls,
      name: 'e2e',
      logger: createLogger('e2e', 'silent'),
    });
    try {
      await putDeviceRecords(nc, DEVICE_REGISTRY_BUCKET, records);
    } finally {
      await nc.close();
    }
  };

  it('stops taking a key as soon as the registry revokes it', async () => {
    await putRecords([{ ...pump, key_hashes: [] }]);
    const msg = { message_id: 'h-3', ts: new Date().toISOString(), readings: { pressure: 1 } };
    await waitFor('the revoked key refused', async () => (await send(msg)).status === 401, 5_000);
    await putRecords([pump]);
    await waitFor('the key taken again', async () => (await send(msg)).status === 202, 5_000);
  });

  it("applies a tenant's profile from the config service to the next message, keeps its history and rolls it back", async () => {
    // Changing a profile is a tenant admin's call (the devices' own requests above need no token).
    const fetch = p.tokens.fetchAs({ tenant: 'plant', role: 'admin' });
    const profiles = `${config}/v1/tenants/plant/profiles/generic`;
    const put = (body: object) =>
      fetch(profiles, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });

    const bad = await put({ metrics: { pressure: { unit: 'Pa', sourceUnit: 'psi' } } });
    expect(bad.status).toBe(400);
    expect((await json(bad)).detail).toMatch(/metric "pressure": "psi" does not convert to "Pa"/);
    const invalid = await put({ metrics: { pressure: { unit: 'Pa', scale: 'ten' } } });
    expect(invalid.status).toBe(400);
    expect((await json(invalid)).detail).toMatch(/scale/);

    // The pump's pressure sensor reports raw ADC counts: 0..4000 is 0..10 bar.
    const adc = {
      pressure: { unit: 'Pa', sourceUnit: '{count}', scale: 250, min: 0, max: 1e6, rename: 'line_pressure' },
    };
    const first = await put({ metrics: adc });
    expect(first.status).toBe(200);
    const { revision } = (await first.json()) as { revision: number };
    expect((await put({ metrics: { pressure: { unit: 'Pa', sourceUnit: 'kPa' } } })).status).toBe(200);
    const back = await fetch(`${profiles}/rollback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ revision }),
    });
    expect(back.status).toBe(200);
    const history = (await (await fetch(`${profiles}/history`)).json()) as {
      revisions: Array<{ revision: number }>;
    };
    expect(history.revisions).toHaveLength(3);
    expect(await (await fetch(`${config}/v1/tenants/plant/profiles`)).json()).toEqual({
      models: ['generic'],
    });
    expect((await json(await fetch(profiles))).profile.metrics).toEqual(adc);

    // The normalizer follows the bucket by a watch; a second is ample for the change to arrive.
    await sleep(1_000);
    const ts = new Date().toISOString();
    const res = await send({ message_id: 'adc-1', ts, readings: { pressure: 2000 } });
    expect(res.status).toBe(202);
    const stored = () =>
      p.pg.query<{ metric: string; value: number; unit: string }>(
        `SELECT metric, value, unit FROM telemetry WHERE device_id = 'pump-1' AND ts = $1`,
        [ts],
      );
    await waitFor('the ADC reading stored', async () => (await stored()).length === 1, 20_000);
    expect(await stored()).toEqual([{ metric: 'line_pressure', value: 500_000, unit: 'Pa' }]);

    expect((await fetch(profiles, { method: 'DELETE' })).status).toBe(200);
    expect((await fetch(profiles)).status).toBe(404);
  });
});
