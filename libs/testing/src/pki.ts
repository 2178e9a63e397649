import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Pki {
  dir: string;
  /** The root CA: what clients verify the broker with, and what the device CA chains to. */
  caCert: string;
  /** The root's key. In production it stays offline; here it lives beside the rest. */
  caKey: string;
  serverCert: string;
  serverKey: string;
  /** The device CA: an intermediate under the root that signs device certificates and the CRL. */
  deviceCaCert: string;
  deviceCaKey: string;
  /** Root and device CA in one file: what the broker trusts for client certificates. */
  deviceTrust: string;
  /** The CRL of the device CA the broker checks (`crlfile`); empty at first, the auth service rewrites it. */
  crlFile: string;
  /** Issues (or reuses) a client certificate from the device CA whose CN is the device id. */
  issueClient(cn: string, days?: number): { cert: string; key: string };
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[], cwd: string) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A new EC key and a certificate for `name` (files `<name>.key`, `<name>.crt`) signed by a CA. */
function issue(dir: string, name: string, subject: string, days: number, extFile: string, ca = 'ca'): void {
  openssl(['req', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      String(days),
      '-extfile',
      extFile,
    ],
    dir,
  );
}

/**
 * A local PKI made with openssl, as production has it: an EC P-256 root CA, a device CA
 * (intermediate, path length 0) that signs device certificates and the CRL, a server
 * certificate for localhost/127.0.0.1, and client certificates on demand. Reused when
 * `dir` already holds one. For development and tests only.
 */
export function createPki(dir: string): Pki {
  mkdirSync(dir, { recursive: true });
  const has = (f: string) => existsSync(join(dir, f));
  if (!has('ca.crt')) {
    openssl(
      [
        'req',
        '-x509',
        ...EC_KEY,
        '-keyout',
        'ca.key',
        '-out',
        'ca.crt',
        '-days',
        '3650',
        '-subj',
        '/CN=IoT Local Root CA',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ],
      dir,
    );
  }
  if (!has('server.crt')) {
    writeFileSync(
      join(dir, 'server.ext'),
      'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n',
    );
    issue(dir, 'server', '/CN=localhost', 825, 'server.ext');
  }
  if (!has('device-ca.crt')) {
    writeFileSync(
      join(dir, 'device-ca.ext'),
      'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
    );
    issue(dir, 'device-ca', '/CN=IoT Local Device CA', 1825, 'device-ca.ext');
    writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\nauthorityKeyIdentifier=keyid\n');
  }
  if (!has('device-trust.crt'))
    writeFileSync(
      join(dir, 'device-trust.crt'),
      readFileSync(join(dir, 'ca.crt'), 'utf8') + readFileSync(join(dir, 'device-ca.crt'), 'utf8'),
    );
  if (!has('device-ca.crl')) {
    // An empty CRL to start with: with a crlfile the broker refuses every client certificate
    // whose issuer has no CRL. The auth service replaces it with its own.
    writeFileSync(join(dir, 'crl-index.txt'), '');
    writeFileSync(
      join(dir, 'crl.cnf'),
      '[ca]\ndefault_ca = device\n[device]\ndatabase = crl-index.txt\ndefault_md = sha256\ndefault_crl_days = 30\n',
    );
    openssl(
      [
        'ca',
        '-gencrl',
        '-config',
        'crl.cnf',
        '-cert',
        'device-ca.crt',
        '-keyfile',
        'device-ca.key',
        '-out',
        'device-ca.crl',
      ],
      dir,
    );
  }
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    deviceCaCert: join(dir, 'device-ca.crt'),
    deviceCaKey: join(dir, 'device-ca.key'),
    deviceTrust: join(dir, 'device-trust.crt'),
    crlFile: join(dir, 'device-ca.crl'),
    issueClient(cn: string, days = 365) {
      if (!existsSync(join(dir, `${cn}.crt`))) issue(dir, cn, `/CN=${cn}`, days, 'client.ext', 'device-ca');
      return { cert: join(dir, `${cn}.crt`), key: join(dir, `${cn}.key`) };
    },
  };
}
