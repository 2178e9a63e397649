import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { DeviceRecord } from '@iot/contracts';
import {
  heldBackServices,
  pipelineReport,
  removeDir,
  sleep,
  spawnManaged,
  startPipeline,
  tempDir,
  type Pipeline,
} from '@iot/testing';
import { countDelivery, dlqMessages, RawTaken, waitDrained, type DeliveryCount } from './delivery';

export const CHAOS_TENANT = 'chaos';
const DEVICES = 20;

/** How big a run is: the fast subset in `./platform test`, the full set on demand. */
export interface ChaosSize {
  messages: number;
  rate: number;
  /** How long a fault lasts where the scenario does not fix it (ms). */
  faultMs: number;
}

export const FAST: ChaosSize = { messages: 400, rate: 100, faultMs: 3_000 };
export const FULL: ChaosSize = { messages: 6_000, rate: 200, faultMs: 30_000 };

export interface ChaosContext {
  p: Pipeline;
  size: ChaosSize;
  say(msg: string): void;
}

export interface Scenario {
  name: string;
  title: string;
  /** A three-node NATS cluster (else one node). */
  cluster?: boolean;
  replicas?: Partial<Record<'tsdb-writer' | 'normalizer' | 'demux', number>>;
  /** Every Nth message is poison. */
  poisonEvery?: number;
  /** Extra environment of the bridge. */
  bridgeEnv?: Record<string, string>;
  /** Extra environment of every service. */
  serviceEnv?: Record<string, string>;
  /** Injects the fault while devices send, and undoes it; resolves when it is undone. */
  inject(ctx: ChaosContext): Promise<void>;
}

async function streamLeader(p: Pipeline, stream: string): Promise<string> {
  const nc = await connect({ servers: p.nats.urls, noAsyncTraces: true });
  try {
    const info = await (await jetstreamManager(nc)).streams.info(stream);
    return info.cluster?.leader ?? p.nats.nodes[0]!.name;
  } finally {
    await nc.close();
  }
}

async function waitReadyAgain(p: Pipeline, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const s of p.services)
    while (Date.now() < deadline) {
      const ok = await fetch(`${s.url}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      await sleep(200);
    }
}

export const SCENARIOS: Scenario[] = [
  {
    name: 'writer-sigkill',
    title: 'SIGKILL tsdb-writer in the middle of a batch; restart it',
    async inject({ p }) {
      const w = p.service('tsdb-writer');
      w.process.signal('SIGKILL');
      await sleep(2_000);
      await w.process.restart();
    },
  },
  {
    name: 'nats-leader-sigkill',
    title: 'SIGKILL the NATS node that leads the raw stream; it comes back later',
    cluster: true,
    async inject({ p, size, say }) {
      const leader = await streamLeader(p, 'TELEMETRY_RAW_V1');
      const node = p.nats.nodes.find((n) => n.name === leader) ?? p.nats.nodes[0]!;
      say(`killing ${node.name}, leader of TELEMETRY_RAW_V1`);
      node.process.signal('SIGKILL');
      await sleep(size.faultMs / 3);
      await node.process.restart();
    },
  },
  {
    name: 'nats-all-restart',
    title: 'Stop all three NATS nodes, then start them again',
    cluster: true,
    async inject({ p, size }) {
      await Promise.all(p.nats.nodes.map((n) => n.process.stop()));
      await sleep(size.faultMs / 3);
      await Promise.all(p.nats.nodes.map((n) => n.process.restart()));
      await p.nats.waitHealthy(60_000);
    },
  },
  {
    name: 'nats-sigstop',
    title: 'SIGSTOP one NATS node (frozen, not dead), then SIGCONT',
    cluster: true,
    async inject({ p, size }) {
      const leader = await streamLeader(p, 'TELEMETRY_RAW_V1');
      const node = p.nats.nodes.find((n) => n.name === leader) ?? p.nats.nodes[0]!;
      node.process.signal('SIGSTOP');
      await sleep(size.faultMs);
      node.process.signal('SIGCONT');
    },
  },
  {
    name: 'postgres-down',
    title: 'PostgreSQL down under load',
    async inject({ p, size }) {
      await p.pg.stopServer();
      await sleep(size.faultMs * 2);
      await p.pg.startServer();
    },
  },
  {
    name: 'postgres-down-overrun',
    title:
      'PostgreSQL down for longer than the normalized stream holds: the stages hold back, nothing is lost',
    // The streams cut to 16 MB in all (raw 5 MiB, decoded and normalized 2 MiB each): the full
    // run's outage leaves about 4,000 messages unwritten, more than the normalized stream
    // holds; the normalizer and demux hold back (BACKPRESSURE_RATIO) and the raw stream keeps
    // them (ADR 0008). The fast run's outage is too short to overrun anything.
    serviceEnv: { NATS_STREAM_STORAGE: '16MB' },
    async inject({ p, size, say }) {
      await p.pg.stopServer();
      await sleep(size.faultMs * 2);
      say(`held back: ${(await heldBackServices(p)).join(', ') || 'none'}`);
      await p.pg.startServer();
    },
  },
  {
    name: 'bridge-sigkill',
    title: 'SIGKILL mqtt-bridge with QoS 1 messages in flight; restart it',
    async inject({ p }) {
      const b = p.service('mqtt-bridge');
      b.process.signal('SIGKILL');
      await sleep(1_000);
      await b.process.restart();
    },
  },
  {
    name: 'broker-restart',
    title: 'Restart the MQTT broker under load',
    // One bridge with plain subscriptions, as ./platform up runs it: mosquitto 2.0 restores
    // those from its persistence file, but not shared ones (docs/reliability.md).
    bridgeEnv: { MQTT_SHARE_GROUP: '', MQTT_CONNECTIONS: '1' },
    async inject({ p }) {
      await p.mqtt.restart();
    },
  },
  {
    name: 'poison',
    title: 'Poison messages among good ones: each in the DLQ with its reason, none holds up the rest',
    poisonEvery: 10,
    async inject() {
      /* the poison is in the traffic itself */
    },
  },
  {
    name: 'consumer-deleted',
    title: 'The durable consumer deleted while its service runs: recreated, and on it goes',
    async inject({ p }) {
      const nc = await connect({ servers: p.nats.urls, noAsyncTraces: true });
      try {
        await (await jetstreamManager(nc)).consumers.delete('TELEMETRY_NORMALIZED_V1', 'tsdb-writer');
      } finally {
        await nc.close();
      }
    },
  },
  {
    name: 'db-locked',
    title: 'The database slowed past the ack wait (a lock held on the table): redeliveries, no duplicates',
    async inject({ p, size }) {
      // The writer's ack wait is 60 s; the full run holds the lock past it.
      const holdMs = size === FULL ? 70_000 : size.faultMs * 2;
      const { Client } = await import('pg');
      const c = new Client({ connectionString: p.pg.url });
      await c.connect();
      try {
        await c.query('BEGIN');
        await c.query('LOCK TABLE telemetry IN ACCESS EXCLUSIVE MODE');
        await sleep(holdMs);
        await c.query('COMMIT');
      } finally {
        await c.end();
      }
    },
  },
  {
    name: 'replica-takeover',
    title: 'Each worker killed and restarted in turn while two replicas run',
    replicas: { demux: 2, normalizer: 2, 'tsdb-writer': 2 },
    async inject({ p, say }) {
      for (const name of ['demux', 'normalizer', 'tsdb-writer']) {
        const victim = p.replicasOf(name)[0]!;
        say(`killing one ${name} replica`);
        victim.process.signal('SIGKILL');
        await sleep(3_000);
        await victim.process.restart();
      }
    },
  },
];

export interface ChaosResult extends DeliveryCount {
  scenario: string;
  title: string;
  dlq: number;
  /** From the fault undone to every accepted reading stored (s). */
  recoverS: number;
  /** Drained: every acknowledged message reached the raw stream and every consumer is idle. */
  drained: boolean;
  passed: boolean;
  failure?: string;
}

/**
 * One scenario: its own servers and services, devices sending numbered readings at QoS 1 on
 * persistent sessions, the fault a third of the way in, then every reading looked up.
 */
export async function runScenario(
  root: string,
  s: Scenario,
  size: ChaosSize,
  say: (msg: string) => void = () => undefined,
): Promise<ChaosResult> {
  const devices: DeviceRecord[] = Array.from({ length: DEVICES }, (_, i) => ({
    device: `chaos-${String(i + 1).padStart(4, '0')}`,
    tenant: CHAOS_TENANT,
    model: 'generic',
    state: 'active',
  }));
  const p = await startPipeline(devices, {
    root,
    natsCluster: s.cluster,
    replicas: s.replicas,
    bridgeEnv: s.bridgeEnv,
    keepLogs: !!process.env.CHAOS_KEEP_LOGS,
    serviceEnv: { LOG_LEVEL: process.env.CHAOS_LOG_LEVEL ?? 'warn', ...s.serviceEnv },
  });
  const dir = tempDir('chaos');
  let raw: RawTaken | undefined;
  // A scenario that failed keeps its services' logs and the simulator's record of what it
  // sent: a loss seen once (nats-sigstop, 2026-12-06 20:34) could not be traced without them.
  let passedScenario = false;
  try {
    const record = join(dir, 'sent.csv');
    raw = await RawTaken.start(p.nats.urls);
    const sim = spawnManaged({
      name: 'simulator',
      cmd: process.execPath,
      args: [
        join(root, 'dist', 'tools', 'simulator', 'src', 'main.js'),
        ...['--url', p.mqtt.url, '--devices', String(DEVICES), '--prefix', 'chaos-'],
        ...['--format', 'canonical', '--rate', String(size.rate), '--messages', String(size.messages)],
        ...['--persistent', '--record', record],
        ...(s.poisonEvery ? ['--poison-every', String(s.poisonEvery)] : []),
      ],
      logFile: join(dir, 'simulator.log'),
      cwd: root,
    });
    await sleep((size.messages / size.rate) * 333);
    say(`${s.name}: ${s.title}`);
    await s.inject({ p, size, say });
    const undoneAt = Date.now();
    await waitReadyAgain(p);
    await sim.exited();
    const log = readFileSync(join(dir, 'simulator.log'), 'utf8');
    const final = /final sent=(\d+) acked=(\d+)/.exec(log);
    if (!final) throw new Error(`the simulator did not finish; its log:\n${log.slice(-2000)}`);
    const acked = Number(final[2]);
    const { drainedAt, complete } = await waitDrained(p, raw, acked, {
      stallMs: 30_000,
      deadline: Date.now() + (size === FAST ? 90_000 : 600_000),
    });
    const where = complete ? '' : await pipelineReport(p).catch((e) => String(e));
    const count = await countDelivery(p, record, CHAOS_TENANT);
    const dlq = await dlqMessages(p);
    const passed =
      complete &&
      count.lostPoints === 0 &&
      count.duplicatedPoints === 0 &&
      count.poisonStored === 0 &&
      dlq === count.poison;
    passedScenario = passed;
    return {
      scenario: s.name,
      title: s.title,
      ...count,
      dlq,
      recoverS: Math.round((drainedAt - undoneAt) / 100) / 10,
      drained: complete,
      passed,
      failure: passed
        ? undefined
        : `lost ${count.lostPoints}, duplicated ${count.duplicatedPoints}, dlq ${dlq} of ${count.poison} poison, drained ${complete}; kept: the service logs in ${p.logs}, the simulator's record in ${dir}${where ? `\n${where}` : ''}`,
    };
  } finally {
    await raw?.stop();
    if (passedScenario) removeDir(dir);
    else process.stderr.write(`the simulator's record kept in ${dir}\n`);
    await p.stop({ keepLogs: !passedScenario || !!process.env.CHAOS_KEEP_LOGS });
  }
}
