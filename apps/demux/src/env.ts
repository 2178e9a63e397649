import { num } from '@iot/config';

export const demuxEnv = {
  MAX_FUTURE_SKEW_MS: num({
    default: 5 * 60_000,
    desc: 'Device clocks further ahead than this are flagged skewed (ms)',
  }),
};
