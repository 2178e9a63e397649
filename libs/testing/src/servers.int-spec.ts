import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { startMosquitto, startNats, startPostgres, startTogether, type PostgresHandle } from './index';

describe('test servers', () => {
  it('starts a three-node JetStream cluster that replicates a stream, and removes it afterwards', async () => {
    const nats = await startNats({ nodes: 3 });
    const nc = await connect({ servers: nats.urls });
    try {
      const jsm = await jetstreamManager(nc);
      // Clustered JetStream needs a meta leader first; retry until one is elected.
      let info;
      for (let i = 0; i < 50 && !info; i++) {
        info = await jsm.streams.add({ name: 'T', subjects: ['t.>'], num_replicas: 3 }).catch(async () => {
          await new Promise((r) => setTimeout(r, 200));
          return undefined;
        });
      }
      expect(info?.config.num_replicas).toBe(3);
      expect(info?.cluster?.replicas?.length).toBe(2);
    } finally {
      await nc.close();
      await nats.stop();
    }
    expect(existsSync(nats.dir)).toBe(false);
  });

  it("runs nats-server with the GOMAXPROCS it is given, and Go's own without one", async () => {
    const [one, own] = await Promise.all([startNats({ goMaxProcs: 1 }), startNats()]);
    try {
      const varz = async (url: string) =>
        (await (await fetch(`${url}/varz`)).json()) as { gomaxprocs: number; cores: number };
      expect((await varz(one.monitorUrl)).gomaxprocs).toBe(1);
      const v = await varz(own.monitorUrl);
      expect(v.gomaxprocs).toBe(Number(process.env['GOMAXPROCS'] || v.cores));
    } finally {
      await Promise.all([one.stop(), own.stop()]);
    }
  });

  it('when one server fails to start, stops those that did and removes their directories', async () => {
    let pg: PostgresHandle | undefined;
    const failing = new Promise<PostgresHandle>((_, reject) =>
      setTimeout(() => reject(new Error('nats-server did not start')), 50),
    );
    await expect(
      startTogether(
        startPostgres().then((h) => (pg = h)),
        failing,
      ),
    ).rejects.toThrow('nats-server did not start');
    expect(pg).toBeDefined();
    expect(existsSync(pg!.dir)).toBe(false);
    await expect(pg!.query('select 1')).rejects.toThrow();
  });

  it('starts PostgreSQL that can be stopped and started again with its data', async () => {
    const pg = await startPostgres();
    try {
      await pg.query('create table t(x int)');
      await pg.query('insert into t values (42)');
      await pg.stopServer();
      await expect(pg.query('select 1')).rejects.toThrow();
      await pg.startServer();
      expect(await pg.query('select x from t')).toEqual([{ x: 42 }]);
    } finally {
      await pg.stop();
    }
  });

  it('starts mosquitto with an mTLS listener that takes a device CA certificate and refuses none', async () => {
    const mq = await startMosquitto({ tls: true });
    try {
      const pki = mq.pki!;
      const dev = pki.issueClient('demo-0001');
      const port = new URL(mq.mqttsUrl!).port;
      const asDevice = [
        '-h',
        '127.0.0.1',
        '-p',
        port,
        '--cafile',
        pki.caCert,
        '--cert',
        dev.cert,
        '--key',
        dev.key,
      ];
      const topic = ['-t', 'devices/demo-0001/telemetry'];
      // A device may not read its own uplink (the ACL): listen where the bridge would.
      const sub = spawn('mosquitto_sub', [
        '-p',
        String(mq.port),
        '-h',
        '127.0.0.1',
        ...topic,
        '-C',
        '1',
        '-W',
        '10',
      ]);
      let out = '';
      sub.stdout.on('data', (d) => (out += d));
      await new Promise((r) => setTimeout(r, 500));
      execFileSync('mosquitto_pub', [...asDevice, ...topic, '-q', '1', '-m', '{"hello":1}']);
      await new Promise((r) => sub.once('exit', r));
      expect(out.trim()).toBe('{"hello":1}');
      // Without a client certificate the TLS listener refuses the connection.
      expect(() =>
        execFileSync(
          'mosquitto_pub',
          ['-p', port, '-h', '127.0.0.1', '--cafile', pki.caCert, '-t', 'x', '-m', 'y'],
          { stdio: 'pipe' },
        ),
      ).toThrow();
    } finally {
      await mq.stop();
    }
  });
});
