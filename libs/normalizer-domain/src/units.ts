/**
 * UCUM unit conversions to the platform's canonical units. Each entry maps a unit a device
 * may send to the canonical unit of its quantity and the function that converts the value.
 */
export interface Conversion {
  to: string;
  convert: (v: number) => number;
}

const same = (to: string): Conversion => ({ to, convert: (v) => v });
const scale = (to: string, k: number): Conversion => ({ to, convert: (v) => v * k });

export const CONVERSIONS: Record<string, Conversion> = {
  // temperature -> Cel
  Cel: same('Cel'),
  '[degF]': { to: 'Cel', convert: (v) => ((v - 32) * 5) / 9 },
  K: { to: 'Cel', convert: (v) => v - 273.15 },
  // voltage -> V
  V: same('V'),
  mV: scale('V', 1e-3),
  // relative quantities -> %
  '%': same('%'),
  '%RH': same('%'),
  '1': scale('%', 100),
  // illuminance -> lx
  lx: same('lx'),
  klx: scale('lx', 1e3),
  // pressure -> Pa
  Pa: same('Pa'),
  hPa: scale('Pa', 100),
  kPa: scale('Pa', 1e3),
  bar: scale('Pa', 1e5),
  // signal level
  'dB[mW]': same('dB[mW]'),
  dBm: same('dB[mW]'),
};

export class UnknownUnitError extends Error {
  constructor(
    readonly metric: string,
    readonly unit: string,
  ) {
    super(
      `metric "${metric}" has unit "${unit}", which has no conversion: send one of ${Object.keys(CONVERSIONS).join(', ')}`,
    );
    this.name = 'UnknownUnitError';
  }
}

/** Converts `value` in `unit` to `canonical`; throws when the two are not the same quantity. */
export function toCanonical(metric: string, value: number, unit: string, canonical: string): number {
  // A UCUM annotation such as {count} (raw ADC counts) has no quantity: the profile's scale
  // and offset make it canonical, so it passes through here unchanged.
  if (isAnnotation(unit) || unit === canonical) return value;
  const c = CONVERSIONS[unit];
  if (!c || c.to !== canonical) throw new UnknownUnitError(metric, unit);
  return c.convert(value);
}

function isAnnotation(unit: string): boolean {
  return unit.length > 2 && unit.startsWith('{') && unit.endsWith('}');
}

/** Why a metric spec cannot work (its source unit does not convert to its unit), or undefined. */
export function specProblem(metric: string, spec: { unit: string; sourceUnit?: string }): string | undefined {
  try {
    toCanonical(metric, 0, spec.sourceUnit ?? spec.unit, spec.unit);
    return undefined;
  } catch {
    return `metric "${metric}": "${spec.sourceUnit}" does not convert to "${spec.unit}"; convertible units are ${Object.keys(CONVERSIONS).join(', ')}, or a {annotation} such as {count} with scale and offset`;
  }
}
