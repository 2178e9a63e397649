import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  /** Issues a client certificate whose CN is the device id; returns its cert and key paths. */
  issueClient(cn: string, days?: number): { cert: string; key: string };
}

function openssl(args: string[], cwd: string) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * A local certificate authority made with openssl: an EC P-256 CA, a server certificate for
 * localhost/127.0.0.1, and client certificates on demand. For development and tests only.
 */
export function createPki(dir: string): Pki {
  mkdirSync(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  if (!existsSync(join(dir, 'server.crt'))) issueCaAndServer(dir, ec);
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    issueClient(cn: string, days = 365) {
      if (existsSync(join(dir, `${cn}.crt`)))
        return { cert: join(dir, `${cn}.crt`), key: join(dir, `${cn}.key`) };
      openssl(['req', ...ec, '-keyout', `${cn}.key`, '-out', `${cn}.csr`, '-subj', `/CN=${cn}`], dir);
      openssl(
        [
          'x509',
          '-req',
          '-in',
          `${cn}.csr`,
          '-CA',
          'ca.crt',
          '-CAkey',
          'ca.key',
          '-CAcreateserial',
          '-out',
          `${cn}.crt`,
          '-days',
          String(days),
          '-extfile',
          'client.ext',
        ],
        dir,
      );
      return { cert: join(dir, `${cn}.crt`), key: join(dir, `${cn}.key`) };
    },
  };
}

function issueCaAndServer(dir: string, ec: string[]): void {
  openssl(
    [
      'req',
      '-x509',
      ...ec,
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
  openssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.crt',
      '-days',
      '825',
      '-extfile',
      'server.ext',
    ],
    dir,
  );
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
}
