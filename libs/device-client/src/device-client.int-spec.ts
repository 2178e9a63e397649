import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { startMosquitto, waitFor, type MosquittoHandle } from '@iot/testing';
import { DeviceClient, type DeviceClientOptions } from './device-client';

/** A subscriber with a persistent session that collects the payloads of `devices/+/telemetry`. */
async function collector(url: string): Promise<{ client: MqttClient; payloads: string[] }> {
  const payloads: string[] = [];
  const client = mqtt.connect(url, { clientId: 'collector', clean: false, reconnectPeriod: 200 });
  client.on('message', (_topic, payload) => payloads.push(payload.toString()));
  await new Promise((r) => client.once('connect', r));
  await client.subscribeAsync('devices/+/telemetry', { qos: 1 });
  return { client, payloads };
}

/** Publishes n messages `<prefix>-<i>`; resolves with what settled them (undefined: a PUBACK). */
function publishAll(
  c: DeviceClient,
  topic: string,
  prefix: string,
  n: number,
): Promise<Array<Error | undefined>> {
  return Promise.all(
    Array.from(
      { length: n },
      (_, i) => new Promise<Error | undefined>((r) => c.publish(topic, `${prefix}-${i}`, r)),
    ),
  );
}

describe('a simulated device’s client against mosquitto', () => {
  let mq: MosquittoHandle;
  const errors: string[] = [];
  const clients: DeviceClient[] = [];
  /** A device client whose errors go to `errors`, ended after each spec. */
  const open = (o: Omit<DeviceClientOptions, 'onError'>) => {
    const device = new DeviceClient({ ...o, onError: (m) => errors.push(m) });
    clients.push(device);
    return device;
  };
  afterEach(async () => {
    for (const c of clients.splice(0)) c.end();
    await mq?.stop();
    errors.length = 0;
  });

  it('publishes at QoS 1 over mTLS with its own certificate: every message acknowledged and delivered', async () => {
    mq = await startMosquitto({ tls: true });
    const pki = mq.pki!;
    const files = pki.issueClient('sim-0001');
    const sub = await collector(mq.url);
    try {
      const device = open({
        url: mq.mqttsUrl!,
        clientId: 'sim-0001',
        clean: true,
        tls: { ca: readFileSync(pki.caCert), cert: readFileSync(files.cert), key: readFileSync(files.key) },
      });
      await device.ready();
      const settled = await publishAll(device, 'devices/sim-0001/telemetry', 'm', 300);
      expect(settled.filter((e) => e !== undefined)).toEqual([]);
      await waitFor('300 messages at the subscriber', () => sub.payloads.length >= 300, 20_000);
      expect(new Set(sub.payloads).size).toBe(300);
      expect(errors).toEqual([]);
    } finally {
      await sub.client.endAsync();
    }
  });

  it('loses nothing over a broker restart: what was unacknowledged or sent meanwhile goes after the reconnect', async () => {
    mq = await startMosquitto();
    const sub = await collector(mq.url);
    try {
      const device = open({
        url: mq.url,
        clientId: 'sim-0002',
        clean: false,
        reconnectMs: 200,
      });
      await device.ready();
      const before = publishAll(device, 'devices/sim-0002/telemetry', 'before', 500);
      const restart = mq.restart();
      const during = publishAll(device, 'devices/sim-0002/telemetry', 'during', 100);
      await restart;
      const settled = [...(await before), ...(await during)];
      expect(settled.filter((e) => e !== undefined)).toEqual([]);
      const expected = [
        ...Array.from({ length: 500 }, (_, i) => `before-${i}`),
        ...Array.from({ length: 100 }, (_, i) => `during-${i}`),
      ];
      await waitFor(
        '600 distinct messages at the subscriber',
        () => new Set(sub.payloads).size >= 600,
        20_000,
      );
      expect([...new Set(sub.payloads)].sort()).toEqual(expected.sort());
    } finally {
      await sub.client.endAsync();
    }
  });

  it('flags DUP only on a resend: what was published before the first CONNACK goes out without it', async () => {
    mq = await startMosquitto({ logPackets: true });
    const device = open({
      url: mq.url,
      clientId: 'sim-0005',
      clean: true,
    });
    const settled = await publishAll(device, 'devices/sim-0005/telemetry', 'early', 3);
    expect(settled.filter((e) => e !== undefined)).toEqual([]);
    // mosquitto's debug log: "Received PUBLISH from sim-0005 (d0, q1, r0, m1, ...".
    const flags = readFileSync(mq.packetLog!, 'utf8').match(/(?<=Received PUBLISH from sim-0005 \()d\d/g);
    expect(flags).toEqual(['d0', 'd0', 'd0']);
  });

  it('says why it cannot connect, keeps trying, and settles what it held with an error when it ends', async () => {
    mq = await startMosquitto();
    const port = mq.port;
    await mq.stop(); // nothing listens there now
    const device = open({
      url: `mqtt://127.0.0.1:${port}`,
      clientId: 'sim-0003',
      clean: true,
      reconnectMs: 100,
    });
    const settled = publishAll(device, 'devices/sim-0003/telemetry', 'never', 3);
    await waitFor('two failed attempts to be reported', () => errors.length >= 2, 20_000);
    expect(errors[0]).toMatch(/ECONNREFUSED/);
    device.end();
    const results = await settled;
    expect(results.map((e) => e?.message)).toEqual(Array(3).fill('not acknowledged before the end'));
  });

  it('says when the broker refuses the CONNECT, tries again, and settles what it held with an error when it ends', async () => {
    mq = await startMosquitto({ allowAnonymous: false });
    const device = open({
      url: mq.url,
      clientId: 'sim-0004',
      clean: true,
      reconnectMs: 100,
    });
    const settled = publishAll(device, 'devices/sim-0004/telemetry', 'refused', 2);
    await waitFor('two refusals to be reported', () => errors.length >= 2, 20_000);
    expect(errors.slice(0, 2)).toEqual(
      Array(2).fill('the broker refused the connection (CONNACK return code 5)'),
    );
    device.end();
    const results = await settled;
    expect(results.map((e) => e?.message)).toEqual(Array(2).fill('not acknowledged before the end'));
  });

  it('reports a CONNECT it cannot encode (a persistent session without a client id) instead of crashing', async () => {
    mq = await startMosquitto();
    open({ url: mq.url, clientId: '', clean: false });
    await waitFor('the error to be reported', () => errors.length > 0, 20_000);
    expect(errors[0]).toBe('cannot send connect: clientId must be given if cleanSession set to 0');
  });
});
