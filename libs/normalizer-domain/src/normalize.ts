import {
  normalizerProfileKey,
  type DecodedTelemetry,
  type NormalizedPoint,
  type NormalizedTelemetry,
  type Quality,
} from '@iot/contracts';
import {
  BUILTIN_PROFILES,
  NO_TENANT_PROFILES,
  type MetricSpec,
  type ModelProfile,
  type TenantProfiles,
} from './profiles';
import { toCanonical } from './units';
import { DeadbandFilter } from './deadband';

export interface NormalizeResult {
  /** The canonical points; those the deadband held back are not among them. */
  telemetry: NormalizedTelemetry;
  /** Points the deadband held back (unchanged values). */
  suppressed: number;
  /** Readings that could not be made canonical (an unknown unit), with why. */
  rejected: Array<{ metric: string; reason: string }>;
}

/** Applies range checks: inside, good; just outside, clamped; far outside, kept and flagged. */
export function applyRange(value: number, spec: MetricSpec): { value: number; quality: Quality } {
  const { min = -Infinity, max = Infinity, clampMargin = 0 } = spec;
  if (value >= min && value <= max) return { value, quality: 'good' };
  if (value < min && value >= min - clampMargin) return { value: min, quality: 'clamped' };
  if (value > max && value <= max + clampMargin) return { value: max, quality: 'clamped' };
  return { value, quality: 'out-of-range' };
}

const DEFAULT_MAX_SILENCE_MS = 15 * 60_000;

export class Normalizer {
  constructor(
    private readonly profiles: Record<string, ModelProfile> = BUILTIN_PROFILES,
    /** Without one, every point is kept. */
    private readonly deadband?: DeadbandFilter,
    private readonly tenantProfiles: TenantProfiles = NO_TENANT_PROFILES,
  ) {}

  /** The tenant's spec for the model's metric, else the built-in model's, else the generic one. */
  private static specIn(
    metric: string,
    tenant: ModelProfile | undefined,
    builtin: ModelProfile | undefined,
    generic: ModelProfile | undefined,
  ): MetricSpec | undefined {
    return tenant?.metrics[metric] ?? builtin?.metrics[metric] ?? generic?.metrics[metric];
  }

  /**
   * Units, scale and offset, range and quality, renames. A metric the model does not know is
   * kept as sent (in its own unit, or `1` when it named none) so nothing is silently lost.
   */
  normalize(d: DecodedTelemetry): NormalizeResult {
    const points: NormalizedPoint[] = [];
    const rejected: NormalizeResult['rejected'] = [];
    let suppressed = 0;
    // The profiles are looked up once a message, not once a reading.
    const tenantProfile = this.tenantProfiles(d.tenant, d.model);
    const builtin = this.profiles[d.model];
    const generic = this.profiles.generic;
    for (const r of d.readings) {
      const spec = Normalizer.specIn(r.metric, tenantProfile, builtin, generic);
      if (!spec) {
        points.push({
          metric: r.metric,
          value: r.value,
          unit: r.unit ?? '1',
          quality: d.skewed ? 'skewed' : 'good',
        });
        continue;
      }
      let value = r.value;
      try {
        const unit = r.unit ?? spec.sourceUnit ?? spec.unit;
        value = toCanonical(r.metric, value, unit, spec.unit);
      } catch (e) {
        rejected.push({ metric: r.metric, reason: (e as Error).message });
        continue;
      }
      value = value * (spec.scale ?? 1) + (spec.offset ?? 0);
      const ranged = applyRange(value, spec);
      const quality: Quality = d.skewed && ranged.quality === 'good' ? 'skewed' : ranged.quality;
      const point: NormalizedPoint = {
        metric: spec.rename ?? r.metric,
        value: round(ranged.value),
        unit: spec.unit,
        quality,
      };
      const band = spec.deadband
        ? { tolerance: spec.deadband, maxSilenceMs: spec.deadbandMaxSilenceMs ?? DEFAULT_MAX_SILENCE_MS }
        : undefined;
      if (this.deadband && !this.deadband.admit(d.tenant, d.device, d.ts, point, band)) {
        suppressed++;
        continue;
      }
      points.push(point);
    }
    return {
      telemetry: {
        tenant: d.tenant,
        device: d.device,
        messageId: d.messageId,
        ts: d.ts,
        receivedAt: d.receivedAt,
        points,
      },
      rejected,
      suppressed,
    };
  }
}

/** Drops binary floating-point noise from conversions (70.5 degF is 21.38888888888889 Cel, not ...90). */
function round(v: number): number {
  return Math.round(v * 1e9) / 1e9;
}

/**
 * The normalizer a service runs: the built-in profiles, a deadband, and tenants' profiles
 * looked up under their key in the profiles bucket (`normalizerProfileKey`). The normalizer
 * service and demux with NORMALIZE_IN_DEMUX (docs/adr/0006) both build theirs here, so the
 * two cannot normalize differently.
 */
export function serviceNormalizer(profileByKey: (key: string) => ModelProfile | undefined): Normalizer {
  return new Normalizer(BUILTIN_PROFILES, new DeadbandFilter(), (tenant, model) =>
    profileByKey(normalizerProfileKey(tenant, model)),
  );
}
