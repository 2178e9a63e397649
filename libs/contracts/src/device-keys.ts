import { createHash, randomBytes } from 'node:crypto';

/** Device keys look like `dev_ak_<43 base64url characters>` (256 random bits). */
export const DEVICE_KEY_PREFIX = 'dev_ak_';
const DEVICE_KEY = /^dev_ak_[A-Za-z0-9_-]{43}$/;

export function isDeviceKey(value: string): boolean {
  return DEVICE_KEY.test(value);
}

/** A new device key. Shown to its owner once; only its hash is kept (`key_hashes`). */
export function newDeviceKey(): string {
  return DEVICE_KEY_PREFIX + randomBytes(32).toString('base64url');
}

/**
 * The stored form of a device key: SHA-256, hex. The key is 256 random bits, so a slow
 * password hash would add nothing but CPU on every request.
 */
export function deviceKeyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}
