import {
  CanonicalTelemetrySchema,
  DecodedTelemetrySchema,
  DeviceRecordSchema,
  NormalizedTelemetrySchema,
  ZenthosTelemetrySchema,
} from './payloads';
import { compileValidator } from './validation';

/** Compiled once at load; hot paths call these, never a schema interpreter. */
export const Validators = {
  zenthosTelemetry: compileValidator('zenthos telemetry', ZenthosTelemetrySchema),
  canonicalTelemetry: compileValidator('canonical telemetry', CanonicalTelemetrySchema),
  decodedTelemetry: compileValidator('iot.decoded.v1', DecodedTelemetrySchema),
  normalizedTelemetry: compileValidator('iot.normalized.v1', NormalizedTelemetrySchema),
  deviceRecord: compileValidator('device record', DeviceRecordSchema),
};
