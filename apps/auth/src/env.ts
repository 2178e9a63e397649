import { num, str } from '@iot/config';

export const authEnv = {
  DATABASE_URL: str({ desc: 'PostgreSQL or TimescaleDB URL, e.g. postgres://iot:secret@db:5432/iot' }),
  DB_POOL_SIZE: num({ default: 4, desc: 'Connections to the database' }),
  AUTH_ACCESS_TTL_S: num({ default: 900, desc: 'Lifetime of an access token (s)' }),
  AUTH_REFRESH_TTL_S: num({ default: 30 * 24 * 3600, desc: 'Lifetime of a refresh token (s)' }),
  AUTH_KEY_ROTATION_H: num({ default: 24 * 7, desc: 'A new signing key every this many hours' }),
  AUTH_KEY_ENCRYPTION_KEY: str({
    default: '',
    desc: '32 bytes, base64: seals the signing keys in the database (openssl rand -base64 32)',
  }),
  AUTH_BOOTSTRAP_ADMIN_EMAIL: str({
    default: '',
    desc: 'The platform admin created at first start, if none exists',
  }),
  AUTH_BOOTSTRAP_ADMIN_PASSWORD: str({
    default: '',
    desc: "That admin's first password (at least 12 characters)",
  }),
  AUTH_SIGN_IN_ATTEMPTS: num({ default: 5, desc: 'Failed sign-ins of one account before it is locked' }),
  AUTH_SIGN_IN_ADDRESS_ATTEMPTS: num({
    default: 30,
    desc: 'Failed sign-ins from one address before it is locked',
  }),
  AUTH_LOCK_S: num({ default: 900, desc: 'How long a lock lasts (s)' }),
  DEVICE_CA_CERT_FILE: str({
    default: '',
    desc: 'The device CA (an intermediate under an offline root) certificate, PEM; empty: no certificates are issued',
  }),
  DEVICE_CA_KEY_FILE: str({ default: '', desc: "The device CA's private key, PEM (a mounted secret)" }),
  DEVICE_CA_CHAIN_FILE: str({
    default: '',
    desc: 'The certificates above the device CA up to the root, PEM',
  }),
  DEVICE_CERT_VALIDITY_DAYS: num({ default: 90, desc: 'Lifetime of a device certificate (days)' }),
  DEVICE_CRL_FILE: str({
    default: '',
    desc: 'Where to write the CRL (PEM) for the broker (mosquitto crlfile); empty: only served over HTTP',
  }),
  DEVICE_CRL_URL: str({
    default: '',
    desc: 'The public URL of GET /v1/pki/crl, written into each certificate as its CRL distribution point',
  }),
  DEVICE_CRL_VALIDITY_H: num({
    default: 24,
    desc: 'How long a CRL is valid (h); it is re-issued every third of it',
  }),
  DEVICE_BOOTSTRAP_TTL_S: num({ default: 86_400, desc: 'Lifetime of an enrolment (bootstrap) token (s)' }),
  EMQX_HOOK_SECRET: str({
    default: '',
    desc: 'The bearer secret EMQX sends to /v1/emqx/authn and /authz; empty: the hooks are off',
  }),
  MQTT_BRIDGE_USERNAME: str({ default: 'iot-bridge', desc: "The bridge's service account on the broker" }),
  MQTT_BRIDGE_PASSWORD: str({ default: '', desc: "That account's password (the bridge's MQTT_PASSWORD)" }),
};
