import { execFileSync } from 'node:child_process';
import { writeFileSync, chmodSync, mkdirSync, watchFile, unwatchFile } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { join } from 'node:path';
import { mosquittoAcl, DEFAULT_BRIDGE_ACCOUNT } from '@iot/contracts';
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
  /** The bridge's service account, when the plain listener enforces the ACL (`acl`). */
  bridgeAccount?: { username: string; password: string };
  dir: string;
  process: ManagedProcess;
  /** With `logPackets`: the file where mosquitto logs every packet. */
  packetLog?: string;
  restart(): Promise<void>;
  /** Makes mosquitto read its certificates and CRL again (SIGHUP), as it does when the CRL file changes. */
  reload(): void;
  stop(): Promise<void>;
}

export interface MosquittoOptions {
  /**
   * Adds an mTLS listener with a local PKI (root, device CA, CRL): the client certificate CN
   * becomes the username, the CRL is checked (and re-read whenever its file changes), and a
   * device may use only its own topics.
   */
  tls?: boolean;
  /**
   * The plain listener enforces the device topic policy too: the client id is the device id,
   * and the bridge signs in with a service account (returned as `bridgeAccount`).
   */
  acl?: boolean;
  /**
   * false: the plain listener refuses a CONNECT without a known username and password
   * (CONNACK return code 5), as a production broker does. Default true.
   */
  allowAnonymous?: boolean;
  /** Logs every packet with its flags (`log_type debug`) to the file `packetLog`, line by line. */
  logPackets?: boolean;
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
    // Each listener has its own authentication and ACL: devices are named by their client
    // id on the loopback development listener and by their certificate on the mTLS one.
    'per_listener_settings true',
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
    // A log file is written line by line; stdout, a file for spawnManaged, only as its buffer fills.
    ...(opts.logPackets ? ['log_type debug', `log_dest file ${join(dir, 'packets.log')}`] : []),
    `listener ${port} 127.0.0.1`,
    `allow_anonymous ${opts.allowAnonymous ?? true}`,
  ];
  let bridgeAccount: MosquittoHandle['bridgeAccount'];
  if (opts.acl) {
    bridgeAccount = { username: DEFAULT_BRIDGE_ACCOUNT, password: randomBytes(18).toString('base64url') };
    const passwords = join(dir, 'passwords');
    writeFileSync(passwords, '');
    execFileSync(which('mosquitto_passwd', ['/usr/bin']) ?? 'mosquitto_passwd', [
      '-b',
      passwords,
      bridgeAccount.username,
      bridgeAccount.password,
    ]);
    writeFileSync(join(dir, 'plain.acl'), mosquittoAcl('%c', bridgeAccount.username));
    lines.push(`password_file ${passwords}`, `acl_file ${join(dir, 'plain.acl')}`);
  }
  if (pki && tlsPort) {
    writeFileSync(join(dir, 'devices.acl'), mosquittoAcl('%u'));
    lines.push(
      `listener ${tlsPort} 127.0.0.1`,
      `cafile ${pki.deviceTrust}`,
      `certfile ${pki.serverCert}`,
      `keyfile ${pki.serverKey}`,
      `crlfile ${pki.crlFile}`,
      'require_certificate true',
      'use_identity_as_username true',
      `acl_file ${join(dir, 'devices.acl')}`,
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
    if (opts.acl) chmodSync(join(dir, 'passwords'), 0o644);
  }
  const proc = spawnManaged({
    name: 'mosquitto',
    cmd: bin,
    args: ['-c', conf],
    logFile: join(dir, 'mosquitto.log'),
  });
  const ready = async () => (await tcpOpen(port)) && (!tlsPort || (await tcpOpen(tlsPort)));
  await waitFor('mosquitto to listen', ready, 15_000, proc.logFile, proc);
  const reload = () => {
    if (proc.running()) proc.signal('SIGHUP');
  };
  // What an operator's file watcher does in production: the CRL changed, mosquitto re-reads it.
  if (pki)
    watchFile(pki.crlFile, { interval: 250 }, (now, before) => now.mtimeMs !== before.mtimeMs && reload());
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    mqttsUrl: tlsPort ? `mqtts://127.0.0.1:${tlsPort}` : undefined,
    pki,
    bridgeAccount,
    dir,
    packetLog: opts.logPackets ? join(dir, 'packets.log') : undefined,
    process: proc,
    reload,
    async restart() {
      await proc.restart();
      await waitFor('mosquitto to listen again', ready, 15_000, proc.logFile);
    },
    async stop() {
      if (pki) unwatchFile(pki.crlFile);
      await proc.stop();
      if (!opts.dir) removeDir(dir);
    },
  };
}
