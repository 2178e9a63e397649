import {
  CanonicalTelemetrySchema,
  DecodedTelemetrySchema,
  DeviceRecordSchema,
  DeviceCommandSchema,
  ModelProfileSchema,
  GatewayBatchSchema,
  SenmlPackSchema,
  NormalizedTelemetrySchema,
  ZenthosTelemetrySchema,
  type CanonicalTelemetry,
  type DecodedTelemetry,
  type DeviceRecord,
  type DeviceCommand,
  type ModelProfile,
  type GatewayBatch,
  type SenmlPack,
  type NormalizedTelemetry,
  type ZenthosTelemetry,
} from './payloads';
import { compileValidator, type CompiledValidator } from './validation';

/** Explicitly typed so that `Validators.x.assert(v)` narrows `v` (TS assertion rule). */
export interface PayloadValidators {
  zenthosTelemetry: CompiledValidator<ZenthosTelemetry>;
  canonicalTelemetry: CompiledValidator<CanonicalTelemetry>;
  decodedTelemetry: CompiledValidator<DecodedTelemetry>;
  normalizedTelemetry: CompiledValidator<NormalizedTelemetry>;
  deviceRecord: CompiledValidator<DeviceRecord>;
  gatewayBatch: CompiledValidator<GatewayBatch>;
  senmlPack: CompiledValidator<SenmlPack>;
  deviceCommand: CompiledValidator<DeviceCommand>;
  modelProfile: CompiledValidator<ModelProfile>;
}

/** Compiled once at load; hot paths call these, never a schema interpreter. */
export const Validators: PayloadValidators = {
  zenthosTelemetry: compileValidator('zenthos telemetry', ZenthosTelemetrySchema),
  canonicalTelemetry: compileValidator('canonical telemetry', CanonicalTelemetrySchema),
  decodedTelemetry: compileValidator('iot.decoded.v1', DecodedTelemetrySchema),
  normalizedTelemetry: compileValidator('iot.normalized.v1', NormalizedTelemetrySchema),
  deviceRecord: compileValidator('device record', DeviceRecordSchema),
  gatewayBatch: compileValidator('gateway batch', GatewayBatchSchema),
  senmlPack: compileValidator('SenML pack', SenmlPackSchema),
  deviceCommand: compileValidator('device command', DeviceCommandSchema),
  modelProfile: compileValidator('normalizer profile', ModelProfileSchema),
};
