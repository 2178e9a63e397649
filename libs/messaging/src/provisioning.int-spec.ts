import { jetstreamManager } from '@nats-io/jetstream';
import { Streams } from '@iot/contracts';
import { createLogger } from '@iot/observability';
import { startNats, type NatsHandle } from '@iot/testing';
import { connectNats, type NatsConnection } from './connection';
import { ensureAllStreams } from './provisioning';

// nats-server reserves each stream's max_bytes and refuses a stream past its max_file_store.
// The contracts ask 28 GiB in all; a small cluster (the kind overlay: 1GB) has less, and the
// services could not start there. NATS_STREAM_STORAGE cuts the limits to fit.
describe('stream provisioning on a server with little storage (real nats-server)', () => {
  const MIB = 1024 ** 2;
  let nats: NatsHandle;
  let nc: NatsConnection;
  const logger = createLogger('test', 'silent');

  beforeAll(async () => {
    nats = await startNats({ maxFileStore: '256MB' });
    nc = await connectNats({ servers: nats.urls, name: 'provisioning-test', logger });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it("says what to set when the streams' own limits do not fit", async () => {
    const error = await ensureAllStreams(nc, { replicas: 1 }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(
      /^stream TELEMETRY_RAW_V1 \(max_bytes 10\.0 GiB\) does not fit in the JetStream storage left on the servers: the platform's streams ask 28\.0 GiB in all .* Set NATS_STREAM_STORAGE to what they may take/,
    );
  });

  it('creates every stream within a storage budget, each limit cut in proportion', async () => {
    await ensureAllStreams(nc, { replicas: 1, storageBytes: 200 * MIB });
    const jsm = await jetstreamManager(nc);
    let total = 0;
    for (const s of Object.values(Streams)) {
      const info = await jsm.streams.info(s.name);
      expect(info.config.max_bytes).toBeGreaterThan(0);
      total += info.config.max_bytes;
    }
    expect(total).toBeLessThanOrEqual(200 * MIB);
    expect((await jsm.streams.info('TELEMETRY_RAW_V1')).config.max_bytes).toBe(71 * MIB);
    // Started again with the same budget (every service does at start): nothing to change.
    await ensureAllStreams(nc, { replicas: 1, storageBytes: 200 * MIB });
  });
});
