/**
 * Subjects are versioned: a breaking payload change is a new version running beside the
 * old one, never an edit. Tokens are `<tenant>.<device>`; both are validated so that a
 * device id can never inject a wildcard or an extra token.
 */
const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/** The last token of a pack's subject, in place of a device id (docs/adr/0011). */
export const PACK_TOKEN = '~pack';

export class InvalidSubjectTokenError extends Error {
  constructor(
    readonly what: string,
    readonly value: string,
  ) {
    super(
      `${what} "${value}" cannot be used in a subject: use 1-64 characters of letters, digits, "_" or "-"`,
    );
    this.name = 'InvalidSubjectTokenError';
  }
}

export function isValidToken(value: string): boolean {
  return TOKEN.test(value);
}

function token(what: string, value: string): string {
  if (!TOKEN.test(value)) throw new InvalidSubjectTokenError(what, value);
  return value;
}

export type PipelineStage = 'mqtt-bridge' | 'demux' | 'normalizer' | 'tsdb-writer';

export const Subjects = {
  raw: (tenant: string, device: string) => `iot.raw.v1.${token('tenant', tenant)}.${token('device', device)}`,
  status: (tenant: string, device: string) =>
    `iot.status.v1.${token('tenant', tenant)}.${token('device', device)}`,
  decoded: (tenant: string, device: string) =>
    `iot.decoded.v1.${token('tenant', tenant)}.${token('device', device)}`,
  normalized: (tenant: string, device: string) =>
    `iot.normalized.v1.${token('tenant', tenant)}.${token('device', device)}`,
  /**
   * A pack of one tenant's normalized messages in one JetStream message (docs/adr/0011): its
   * last token is no device id (`~` is not allowed in one), so a pack is known by its subject.
   */
  normalizedPack: (tenant: string) => `iot.normalized.v1.${token('tenant', tenant)}.${PACK_TOKEN}`,
  /** A pack of one tenant's decoded messages, from demux to the normalizer (docs/adr/0011). */
  decodedPack: (tenant: string) => `iot.decoded.v1.${token('tenant', tenant)}.${PACK_TOKEN}`,
  /**
   * A pack of one tenant's raw device messages, from the bridge to demux (docs/adr/0011):
   * each payload's bytes as the device sent them.
   */
  rawPack: (tenant: string) => `iot.raw.v1.${token('tenant', tenant)}.${PACK_TOKEN}`,
  alarm: (tenant: string, device: string) =>
    `iot.events.v1.alarm.${token('tenant', tenant)}.${token('device', device)}`,
  /** What became of a downlink command: on EVENTS_V1 beside the alarms. */
  commandResult: (tenant: string, device: string) =>
    `iot.events.v1.command.${token('tenant', tenant)}.${token('device', device)}`,
  /**
   * A message for a person that the notifier delivers (e-mail): password resets, on
   * EVENTS_V1. It carries a one-time token that expires within the hour.
   */
  notification: (kind: string, user: string) =>
    `iot.events.v1.notify.${token('kind', kind)}.${token('user', user)}`,
  command: (tenant: string, device: string) =>
    `iot.cmd.v1.${token('tenant', tenant)}.${token('device', device)}`,
  configChanged: (tenant: string) => `iot.config.v1.changed.${token('tenant', tenant)}`,
  /**
   * A device key was used (HTTP ingest): core NATS, no stream; auth notes the key's last
   * use. A hint that may be lost, sent at most once a minute per key. Payload `{key_hash}`.
   */
  deviceKeyUsed: (tenant: string, device: string) =>
    `iot.auth.v1.key-used.${token('tenant', tenant)}.${token('device', device)}`,
  /** The tenant may be unknown (an unregistered device): it is then `_unknown`. */
  dlq: (stage: string, tenant: string) => `iot.dlq.v1.${token('stage', stage)}.${token('tenant', tenant)}`,
} as const;

/** Wildcard filters, for stream definitions and consumer filters. */
export const SubjectFilters = {
  raw: 'iot.raw.v1.>',
  status: 'iot.status.v1.>',
  decoded: 'iot.decoded.v1.>',
  normalized: 'iot.normalized.v1.>',
  events: 'iot.events.v1.>',
  commands: 'iot.cmd.v1.>',
  config: 'iot.config.v1.>',
  dlq: 'iot.dlq.v1.>',
  deviceKeyUsed: 'iot.auth.v1.key-used.>',
} as const;

export const UNKNOWN_TENANT = '_unknown';

/** Whether a message is a pack of messages (`Subjects.normalizedPack`, `decodedPack`, `rawPack`), by its subject. */
export function isPackSubject(subject: string): boolean {
  return subject.endsWith(`.${PACK_TOKEN}`);
}

/** Splits `iot.<kind>.v1.<tenant>.<device>` into its tenant and device. */
export function parseDeviceSubject(subject: string): { tenant: string; device: string } | undefined {
  const parts = subject.split('.');
  if (parts.length !== 5 || parts[0] !== 'iot') return undefined;
  return { tenant: parts[3]!, device: parts[4]! };
}

/**
 * Whether a subject matches one of NATS subject filters (`*` one token, a last `>` one or
 * more), as nats-server matches them. Compiled once: a filter ending in `>` with no `*`
 * before it, the common case, is a prefix test with no allocation per subject.
 */
export function subjectMatcher(filters: readonly string[]): (subject: string) => boolean {
  const tests = filters.map((filter): ((subject: string) => boolean) => {
    const tokens = filter.split('.');
    const tail = tokens[tokens.length - 1] === '>';
    if (tail && !tokens.includes('*')) {
      const prefix = filter.slice(0, -1);
      return (subject) => subject.length > prefix.length && subject.startsWith(prefix);
    }
    const fixed = tail ? tokens.length - 1 : tokens.length;
    return (subject) => {
      const s = subject.split('.');
      if (tail ? s.length <= fixed : s.length !== fixed) return false;
      for (let i = 0; i < fixed; i++) if (tokens[i] !== '*' && tokens[i] !== s[i]) return false;
      return true;
    };
  });
  return (subject) => tests.some((test) => test(subject));
}
