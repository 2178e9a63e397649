/** How one metric of a device model is made canonical. */
export interface MetricSpec {
  /** Canonical unit (UCUM). */
  unit: string;
  /** The unit the device sends when it names none (defaults to the canonical unit). */
  sourceUnit?: string;
  scale?: number;
  offset?: number;
  /** Physically valid range in the canonical unit. */
  min?: number;
  max?: number;
  /** Values at most this far outside the range are clamped to it; further out they are kept and flagged. */
  clampMargin?: number;
  /** Store under this name. */
  rename?: string;
  /** Deadband: a value within this distance of the last stored one is not stored again. */
  deadband?: number;
  /** With a deadband, still store at least this often (ms); default 15 minutes. */
  deadbandMaxSilenceMs?: number;
}

export interface ModelProfile {
  model: string;
  metrics: Record<string, MetricSpec>;
}

/**
 * Built-in profiles. They are defaults: the config service (a later issue) overrides them
 * per tenant and model, and the normalizer takes the merged result.
 */
export const BUILTIN_PROFILES: Record<string, ModelProfile> = {
  'zenthos-esp32': {
    model: 'zenthos-esp32',
    metrics: {
      soil_moisture: { unit: '%', min: 0, max: 100, clampMargin: 5 },
      temperature: { unit: 'Cel', min: -40, max: 85, clampMargin: 2 },
      humidity: { unit: '%', min: 0, max: 100, clampMargin: 5 },
      // Light, battery and radio level jitter without meaning: small moves are not stored.
      light_level: { unit: 'lx', min: 0, max: 200_000, clampMargin: 1_000, deadband: 5 },
      battery_voltage: { unit: 'V', min: 0, max: 5, clampMargin: 0.2, deadband: 0.005 },
      signal_strength: { unit: 'dB[mW]', min: -130, max: 0, clampMargin: 5, deadband: 1 },
    },
  },
  generic: {
    model: 'generic',
    metrics: {
      temperature: { unit: 'Cel', min: -273.15, max: 1000 },
      humidity: { unit: '%', min: 0, max: 100, clampMargin: 5 },
      soil_moisture: { unit: '%', min: 0, max: 100, clampMargin: 5 },
      supply_voltage: { unit: 'V', min: 0, max: 1000 },
      battery_voltage: { unit: 'V', min: 0, max: 100 },
      light_level: { unit: 'lx', min: 0, max: 200_000 },
      pressure: { unit: 'Pa', min: 0, max: 1e7 },
    },
  },
};
