// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { createHash, createPrivateKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type Algorithm = webcrypto.Algorithm;
type EcdsaParams = webcrypto.EcdsaParams;
type ImportAlgorithm = webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams;
import { readFileSync } from 'node:fs';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** Why a CSR or certificate is refused, in words that say what to send instead. */
export class CertificateRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CertificateRequestError';
  }
}

export interface DeviceCaFiles {
  /** The intermediate CA certificate that signs device certificates (PEM). */
  certFile: string;
  /** Its private key (PEM, PKCS#8 or SEC1/PKCS#1). The root's key stays offline. */
  keyFile: string;
  /** The certificates above it, up to the root (PEM), sent along with each certificate issued. */
  chainFile?: string;
}

export interface DeviceCaSettings {
  /** Lifetime of a device certificate. */
  validityDays: number;
  /** How long a CRL is valid; it is re-issued well before (every third of it). */
  crlValidityH: number;
  /** Where the CRL is published, written into each certificate's CRL distribution point. */
  crlUrl?: string;
}

export interface IssuedCertificate {
  serial: string;
  pem: string;
  fingerprint: string;
  notBefore: Date;
  notAfter: Date;
}

export interface CrlEntry {
  serial: string;
  revokedAt: Date;
  reason: number;
}

/** RFC 5280 reason names an API accepts, and their codes. */
export const REVOCATION_REASONS: Record<string, x509.X509CrlReason> = {
  unspecified: x509.X509CrlReason.unspecified,
  keyCompromise: x509.X509CrlReason.keyCompromise,
  affiliationChanged: x509.X509CrlReason.affiliationChanged,
  superseded: x509.X509CrlReason.superseded,
  cessationOfOperation: x509.X509CrlReason.cessationOfOperation,
};

const MIN_RSA_BITS = 2048;
const CLOCK_SKEW_MS = 5 * 60_000;

function signingAlgorithmOf(key: KeyObject): { importAlg: ImportAlgorithm; sign: Algorithm | EcdsaParams } {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const namedCurve = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : undefined;
    if (!namedCurve) throw new Error(`device CA key: EC curve ${curve} is not supported; use P-256 or P-384`);
    return {
      importAlg: { name: 'ECDSA', namedCurve },
      sign: { name: 'ECDSA', hash: namedCurve === 'P-256' ? 'SHA-256' : 'SHA-384' } as EcdsaParams,
    };
  }
  if (key.asymmetricKeyType === 'rsa')
    return {
      importAlg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      sign: { name: 'RSASSA-PKCS1-v1_5' },
    };
  throw new Error(
    `device CA key: ${key.asymmetricKeyType} keys are not supported; use EC P-256/P-384 or RSA`,
  );
}

/** The public key of a CSR is acceptable for a device: EC P-256/P-384, Ed25519, or RSA of 2048 bits or more. */
function checkDeviceKey(alg: Algorithm & { namedCurve?: string; modulusLength?: number }): void {
  if (alg.name === 'ECDSA' && (alg.namedCurve === 'P-256' || alg.namedCurve === 'P-384')) return;
  if (alg.name === 'Ed25519') return;
  if (alg.name.startsWith('RSA') && (alg.modulusLength ?? 0) >= MIN_RSA_BITS) return;
  throw new CertificateRequestError(
    `the CSR's key (${alg.name}${alg.namedCurve ? ' ' + alg.namedCurve : ''}${alg.modulusLength ? ' ' + alg.modulusLength + ' bits' : ''}) is not accepted: use EC P-256 (what the ESP32 firmware makes), P-384, Ed25519 or RSA of at least ${MIN_RSA_BITS} bits`,
  );
}

function parseCsr(pem: unknown): x509.Pkcs10CertificateRequest {
  if (typeof pem !== 'string' || !pem.includes('-----BEGIN CERTIFICATE REQUEST-----'))
    throw new CertificateRequestError(
      'csr must be a PEM certificate signing request ("-----BEGIN CERTIFICATE REQUEST-----..."), e.g. from `openssl req -new`',
    );
  try {
    return new x509.Pkcs10CertificateRequest(pem);
  } catch (e) {
    throw new CertificateRequestError(`csr could not be read as PKCS#10: ${(e as Error).message}`);
  }
}

/** The SubjectPublicKeyInfo (DER) of a CSR, to compare with a certificate's. */
export function csrPublicKey(pem: unknown): Buffer {
  return Buffer.from(parseCsr(pem).publicKey.rawData);
}

/** A certificate presented by a device, parsed; refused with a clear message when it is not one. */
export function parseCertificate(pem: unknown, what = 'certificate'): x509.X509Certificate {
  if (typeof pem !== 'string' || !pem.includes('-----BEGIN CERTIFICATE-----'))
    throw new CertificateRequestError(`${what} must be a PEM certificate ("-----BEGIN CERTIFICATE-----...")`);
  try {
    return new x509.X509Certificate(pem);
  } catch (e) {
    throw new CertificateRequestError(`${what} could not be read as X.509: ${(e as Error).message}`);
  }
}

const serialOf = (cert: x509.X509Certificate) => cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, '');

/**
 * The platform's device CA: an intermediate under a root kept offline. It issues device
 * certificates from CSRs (CN = the device id, client authentication only) and signs the
 * CRL the broker checks. Its key is read from a file (a Kubernetes secret in production).
 */
export class DeviceCa {
  private constructor(
    readonly cert: x509.X509Certificate,
    private readonly key: CryptoKey,
    private readonly signing: Algorithm | EcdsaParams,
    /** The CA certificate and the chain above it, PEM: what a device needs besides its own. */
    readonly chainPem: string,
    private readonly s: DeviceCaSettings,
  ) {}

  static async load(files: DeviceCaFiles, settings: DeviceCaSettings): Promise<DeviceCa> {
    const cert = new x509.X509Certificate(readFileSync(files.certFile, 'utf8'));
    const basic = cert.getExtension(x509.BasicConstraintsExtension);
    if (!basic?.ca)
      throw new Error(`device CA certificate ${files.certFile} is not a CA (basicConstraints CA:TRUE)`);
    const keyObject = createPrivateKey(readFileSync(files.keyFile, 'utf8'));
    const { importAlg, sign } = signingAlgorithmOf(keyObject);
    const key = keyObject.toCryptoKey(importAlg, false, ['sign']) as unknown as CryptoKey;
    // The key must be the certificate's: sign and verify one throwaway CRL to be sure.
    const probe = await x509.X509CrlGenerator.create({
      issuer: cert.subject,
      signingKey: key,
      signingAlgorithm: sign,
    });
    if (!(await probe.verify({ publicKey: cert })))
      throw new Error(`device CA key ${files.keyFile} does not belong to the certificate ${files.certFile}`);
    const chain = files.chainFile ? readFileSync(files.chainFile, 'utf8').trim() + '\n' : '';
    return new DeviceCa(cert, key, sign, cert.toString('pem') + '\n' + chain, settings);
  }

  get notAfter(): Date {
    return this.cert.notAfter;
  }

  /**
   * Signs a certificate for `device` from its CSR. The CSR's signature proves the device
   * holds the key; its subject is ignored (the CN is always the registered device id).
   */
  async issue(device: string, csrPem: unknown, now = new Date()): Promise<IssuedCertificate> {
    const csr = parseCsr(csrPem);
    if (!(await csr.verify()))
      throw new CertificateRequestError('the CSR signature does not verify: sign it with the key it carries');
    checkDeviceKey(csr.publicKey.algorithm as Algorithm);
    const notBefore = new Date(now.getTime() - CLOCK_SKEW_MS);
    const notAfter = new Date(
      Math.min(now.getTime() + this.s.validityDays * 86_400_000, this.cert.notAfter.getTime()),
    );
    const serial = randomBytes(16);
    serial[0] = (serial[0]! & 0x7f) | 0x10; // positive, and no leading zero byte
    const rsa = csr.publicKey.algorithm.name.startsWith('RSA');
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        rsa
          ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
          : x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(this.cert),
    ];
    if (this.s.crlUrl) extensions.push(new x509.CRLDistributionPointsExtension([this.s.crlUrl]));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial.toString('hex'),
      subject: [{ CN: [device] }],
      issuer: this.cert.subject,
      notBefore,
      notAfter,
      publicKey: csr.publicKey,
      signingKey: this.key,
      signingAlgorithm: this.signing,
      extensions,
    });
    return {
      serial: serialOf(cert),
      pem: cert.toString('pem') + '\n',
      fingerprint: createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex'),
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
    };
  }

  /** Was `cert` issued by this CA (its signature verifies with the CA's key)? */
  async issued(cert: x509.X509Certificate): Promise<boolean> {
    return (
      cert.issuer === this.cert.subject && (await cert.verify({ publicKey: this.cert, signatureOnly: true }))
    );
  }

  /** A CRL of `entries`, valid for the configured time; PEM and DER. */
  async crl(entries: CrlEntry[], now = new Date()): Promise<{ pem: string; der: Buffer; nextUpdate: Date }> {
    const nextUpdate = new Date(now.getTime() + this.s.crlValidityH * 3_600_000);
    const crl = await x509.X509CrlGenerator.create({
      issuer: this.cert.subject,
      thisUpdate: now,
      nextUpdate,
      signingKey: this.key,
      signingAlgorithm: this.signing,
      extensions: [await x509.AuthorityKeyIdentifierExtension.create(this.cert)],
      entries: entries.map((e) => ({
        serialNumber: e.serial,
        revocationDate: e.revokedAt,
        reason: e.reason as x509.X509CrlReason,
      })),
    });
    const der = Buffer.from(crl.rawData);
    // OpenSSL (and so mosquitto) reads only the RFC 7468 label "X509 CRL", not the library's "CRL".
    const pem = `-----BEGIN X509 CRL-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END X509 CRL-----\n`;
    return { pem, der, nextUpdate };
  }
}

export { serialOf as certificateSerial };
