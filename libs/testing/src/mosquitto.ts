import { writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createPki, type Pki } from './pki';
import {
  chownTo,
  isRoot,
  portOr,
  removeDir,
  spawnManaged,
  tempDir,
  waitFor,
  which,
  type ManagedProcess,
} from './process';

export interface MosquittoHandle {
  /** mqtt://127.0.0.1:<port>: the plain listener (loopback only). */
  url: string;
  port: number;
  /** mqtts://127.0.0.1:<port>: mTLS listener, when started with `tls`. */
  mqttsUrl?: string;
  pki?: Pki;
  dir: string;
  process: ManagedProcess;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface MosquittoOptions {
  /** Adds an mTLS listener with a fresh local CA; the client certificate CN becomes the username. */
  tls?: boolean;
  /** A lasting directory (for `./platform up`): kept on stop; its CA is reused. */
  dir?: string;
  /** Preferred ports; free ones are taken when these are busy. */
  port?: number;
  tlsPort?: number;
}

const tcpOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

/** Starts mosquitto 2 with persistence (QoS 1 sessions survive a restart) on free ports. */
export async function startMosquitto(opts: MosquittoOptions = {}): Promise<MosquittoHandle> {
  const bin = which('mosquitto', ['/usr/sbin']);
  if (!bin)
    throw new Error('mosquitto not found: install the Debian package mosquitto (./platform test does)');
  const dir = opts.dir ?? tempDir('mqtt');
  mkdirSync(dir, { recursive: true });
  const port = await portOr(opts.port);
  const tlsPort = opts.tls ? await portOr(opts.tlsPort) : undefined;
  const pki = opts.tls ? createPki(join(dir, 'pki')) : undefined;
  const lines = [
    'per_listener_settings false',
    'allow_anonymous true',
    'persistence true',
    `persistence_location ${dir}/`,
    'autosave_interval 1',
    // Queue generously for persistent sessions: a bridge that restarts must find its messages.
    'max_queued_messages 1000000',
    'max_inflight_messages 1000',
    'log_dest stdout',
    'log_type error',
    'log_type warning',
    'log_type notice',
    `listener ${port} 127.0.0.1`,
  ];
  if (pki && tlsPort) {
    lines.push(
      `listener ${tlsPort} 127.0.0.1`,
      `cafile ${pki.caCert}`,
      `certfile ${pki.serverCert}`,
      `keyfile ${pki.serverKey}`,
      'require_certificate true',
      'use_identity_as_username true',
    );
  }
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, lines.join('\n') + '\n');
  if (isRoot()) {
    // mosquitto drops root privileges to its own user: let it write its persistence file.
    chownTo(dir, 'mosquitto');
    if (pki) {
      chownTo(pki.dir, 'mosquitto');
      chmodSync(pki.serverKey, 0o644);
    }
  }
  const proc = spawnManaged({
    name: 'mosquitto',
    cmd: bin,
    args: ['-c', conf],
    logFile: join(dir, 'mosquitto.log'),
  });
  const ready = async () => (await tcpOpen(port)) && (!tlsPort || (await tcpOpen(tlsPort)));
  await waitFor('mosquitto to listen', ready, 15_000, proc.logFile);
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    mqttsUrl: tlsPort ? `mqtts://127.0.0.1:${tlsPort}` : undefined,
    pki,
    dir,
    process: proc,
    async restart() {
      await proc.restart();
      await waitFor('mosquitto to listen again', ready, 15_000, proc.logFile);
    },
    async stop() {
      await proc.stop();
      if (!opts.dir) removeDir(dir);
    },
  };
}
