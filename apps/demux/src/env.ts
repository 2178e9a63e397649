import { bool, num } from '@iot/config';

export const demuxEnv = {
  MAX_FUTURE_SKEW_MS: num({
    default: 5 * 60_000,
    desc: 'Device clocks further ahead than this are flagged skewed (ms)',
  }),
  NORMALIZE_IN_DEMUX: bool({
    default: false,
    desc:
      'Normalize in this process and publish iot.normalized.v1 directly, one JetStream hop less ' +
      '(small machines; docs/adr/0006). The normalizer service still runs for what reaches iot.decoded.v1',
  }),
};
