import { isValidToken } from '@iot/contracts';

export type PayloadFormat = 'zenthos' | 'canonical';

export interface DeviceTopic {
  device: string;
  kind: 'telemetry' | 'status';
  format: PayloadFormat;
  /** The device model named in a compatibility topic (`zenthos/<model>/...`). */
  model?: string;
}

/**
 * Maps a device-facing MQTT topic to what it carries. Returns undefined for any topic the
 * bridge does not take (it then counts and drops it; the broker ACL should prevent it).
 */
export function parseDeviceTopic(topic: string): DeviceTopic | undefined {
  const parts = topic.split('/');
  if (parts.length === 3 && parts[0] === 'devices') {
    const [, device, kind] = parts as [string, string, string];
    if ((kind === 'telemetry' || kind === 'status') && isValidToken(device))
      return { device, kind, format: 'canonical' };
  }
  if (parts.length === 4 && parts[0] === 'zenthos') {
    const [, model, device, kind] = parts as [string, string, string, string];
    if ((kind === 'telemetry' || kind === 'status') && isValidToken(device) && isValidToken(model))
      return { device, kind, format: 'zenthos', model };
  }
  return undefined;
}

/** The topic filters the bridge subscribes to, inside a shared-subscription group. */
export function bridgeSubscriptions(group: string): string[] {
  // No group: plain subscriptions, for a single bridge. mosquitto 2.0 keeps those in a
  // persistent session across its own restart, but not shared ones (docs/reliability.md).
  const prefix = group ? `$share/${group}/` : '';
  return [
    `${prefix}devices/+/telemetry`,
    `${prefix}devices/+/status`,
    `${prefix}zenthos/+/+/telemetry`,
    `${prefix}zenthos/+/+/status`,
  ];
}
