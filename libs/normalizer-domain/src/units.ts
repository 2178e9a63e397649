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
  const c = CONVERSIONS[unit];
  if (!c || c.to !== canonical) throw new UnknownUnitError(metric, unit);
  return c.convert(value);
}
