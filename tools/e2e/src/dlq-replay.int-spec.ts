import { randomUUID } from 'node:crypto';
import { DEVICE_REGISTRY_BUCKET } from '@iot/contracts';
import { connectNats, putDeviceRecords } from '@iot/messaging';
import { createLogger } from '@iot/observability';
import { waitFor } from '@iot/testing';
import { mosquittoPub, startPipeline, type Pipeline } from './pipeline';

/** The fields of the DLQ API's answers these tests read. */
interface ApiBody {
  items: Array<{ seq: number } & Record<string, unknown>>;
  payload: { text: string };
  replayed: number[];
  failed: unknown[];
  purged: number[];
  paths: Record<string, unknown>;
}

describe('the DLQ API of the control plane', () => {
  let p: Pipeline;
  let api: string;
  // The `_unknown` tenant's dead letters belong to no tenant: a platform admin handles them.
  let fetch: typeof globalThis.fetch;
  beforeAll(async () => {
    p = await startPipeline(
      [{ device: 'known-1', tenant: 'acme', model: 'zenthos-esp32', state: 'active' }],
      { withControlPlane: true },
    );
    api = p.service('config').url;
    fetch = p.tokens.fetchAs({ tenant: 'acme', role: 'operator', platformAdmin: true });
  });
  afterAll(async () => {
    await p?.stop();
  });

  const reading = (device: string, timestamp: number, temperature = 20) =>
    JSON.stringify({ message_id: randomUUID(), device_id: device, timestamp, sensors: { temperature } });
  const publish = (device: string, payload: string) =>
    mosquittoPub(p, `zenthos/zenthos-esp32/${device}/telemetry`, device, payload);
  const json = async (res: Response) => ({
    status: res.status,
    type: res.headers.get('content-type'),
    body: (await res.json()) as ApiBody,
  });
  const body = async (url: string) => (await (await fetch(url)).json()) as ApiBody;
  const rowsOf = (device: string) => p.pg.query(`SELECT value FROM telemetry WHERE device_id = $1`, [device]);

  it('replays the message of a device that was registered after it sent, and the reading is stored', async () => {
    const now = Math.floor(Date.now() / 1000);
    publish('late-1', reading('late-1', now, 23.5));
    await waitFor(
      'the unknown device in the DLQ',
      async () => (await body(`${api}/v1/tenants/_unknown/dlq`)).items.length === 1,
      20_000,
    );
    const list = await json(await fetch(`${api}/v1/tenants/_unknown/dlq?reason=unknown-device`));
    expect(list.body.items).toEqual([
      expect.objectContaining({
        stage: 'mqtt-bridge',
        reason: 'unknown-device',
        device: 'late-1',
        originalSubject: 'zenthos/zenthos-esp32/late-1/telemetry',
      }),
    ]);
    const seq = list.body.items[0].seq;
    const one = await json(await fetch(`${api}/v1/tenants/_unknown/dlq/${seq}`));
    expect(JSON.parse(one.body.payload.text).sensors).toEqual({ temperature: 23.5 });

    // Still unregistered: the replay fails, says why, and the message stays.
    const early = await json(
      await fetch(`${api}/v1/tenants/_unknown/dlq/replay`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ seqs: [seq] }),
      }),
    );
    expect(early.body).toEqual({
      replayed: [],
      failed: [{ seq, error: 'device "late-1" is still not registered: register or enable it first' }],
    });

    const nc = await connectNats({
      servers: p.nats.urls,
      name: 'register',
      logger: createLogger('t', 'silent'),
    });
    await putDeviceRecords(nc, DEVICE_REGISTRY_BUCKET, [
      { device: 'late-1', tenant: 'acme', model: 'zenthos-esp32', state: 'active' },
    ]);
    await nc.close();
    await waitFor(
      'the replay to succeed',
      async () => {
        const r = await json(
          await fetch(`${api}/v1/tenants/_unknown/dlq/replay`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ seqs: [seq] }),
          }),
        );
        return r.body.replayed.length === 1;
      },
      10_000,
    );
    await waitFor(
      'the replayed reading in the table',
      async () => (await rowsOf('late-1')).length === 1,
      20_000,
    );
    expect(await p.pg.query(`SELECT tenant_id, value FROM telemetry WHERE device_id = 'late-1'`)).toEqual([
      { tenant_id: 'acme', value: 23.5 },
    ]);
    expect((await body(`${api}/v1/tenants/_unknown/dlq`)).items).toEqual([]);
  });

  it('purges by filter within the tenant only, and answers bad requests as problem details', async () => {
    const now = Math.floor(Date.now() / 1000);
    publish('known-1', JSON.stringify({ device_id: 'known-1', timestamp: now, sensors: { temperature: 1 } })); // no message_id
    await waitFor(
      'the invalid message in the DLQ',
      async () => (await body(`${api}/v1/tenants/acme/dlq`)).items.length === 1,
      20_000,
    );
    expect((await body(`${api}/v1/tenants/other/dlq`)).items).toEqual([]);
    expect((await fetch(`${api}/v1/tenants/other/dlq/1`)).status).toBe(404);

    const bad = await json(
      await fetch(`${api}/v1/tenants/acme/dlq/purge`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ every: 'thing' }),
      }),
    );
    expect(bad).toEqual({
      status: 400,
      type: expect.stringContaining('application/problem+json'),
      body: expect.objectContaining({
        status: 400,
        detail: expect.stringContaining('unexpected property "every"'),
      }),
    });
    const purged = await json(
      await fetch(`${api}/v1/tenants/acme/dlq/purge`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ all: true, reason: 'invalid-payload' }),
      }),
    );
    expect(purged.body.purged).toHaveLength(1);
    expect((await body(`${api}/v1/tenants/acme/dlq`)).items).toEqual([]);
    await waitFor(
      'iot_dlq_size back to 0',
      async () => /iot_dlq_size\{[^}]*\} 0/.test(await (await fetch(`${api}/metrics`)).text()),
      15_000,
    );
  });

  it('publishes its API as OpenAPI', async () => {
    const doc = await body(`${api}/openapi.json`);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/v1/tenants/{tenant}/dlq',
        '/v1/tenants/{tenant}/dlq/{seq}',
        '/v1/tenants/{tenant}/dlq/replay',
        '/v1/tenants/{tenant}/dlq/purge',
      ]),
    );
  });
});
