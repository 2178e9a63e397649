import type { MetricSpec, ModelProfile } from '@iot/contracts';

export type { MetricSpec, ModelProfile };

/** A tenant's own profile for a model, if it has one (from the config service). */
export type TenantProfiles = (tenant: string, model: string) => ModelProfile | undefined;

export const NO_TENANT_PROFILES: TenantProfiles = () => undefined;

/**
 * Built-in profiles. They are defaults: a tenant's profile for a model (config service,
 * `PUT /v1/tenants/:tenant/profiles/:model`) overrides them metric by metric.
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
