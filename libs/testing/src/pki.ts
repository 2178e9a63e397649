import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  /** Issues (or reuses) a client certificate whose CN is the device id. */
  issueClient(cn: string, days?: number): { cert: string; key: string };
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[], cwd: string) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A new EC key and a certificate for `name` (files `<name>.key`, `<name>.crt`) signed by the CA. */
function issue(dir: string, name: string, subject: string, days: number, extFile: string): void {
  openssl(['req', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
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
 * A local certificate authority made with openssl: an EC P-256 CA, a server certificate for
 * localhost/127.0.0.1, and client certificates on demand. Reused when `dir` already holds
 * one. For development and tests only.
 */
export function createPki(dir: string): Pki {
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(dir, 'server.crt'))) {
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
        '/CN=IoT Local Dev CA',
      ],
      dir,
    );
    writeFileSync(
      join(dir, 'server.ext'),
      'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n',
    );
    writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
    issue(dir, 'server', '/CN=localhost', 825, 'server.ext');
  }
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    issueClient(cn: string, days = 365) {
      if (!existsSync(join(dir, `${cn}.crt`))) issue(dir, cn, `/CN=${cn}`, days, 'client.ext');
      return { cert: join(dir, `${cn}.crt`), key: join(dir, `${cn}.key`) };
    },
  };
}
