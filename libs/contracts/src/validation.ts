import Ajv, { type ErrorObject } from 'ajv';
import addFormats from 'ajv-formats';
import type { Static, TSchema } from '@sinclair/typebox';

/** A payload that failed its schema: `field` is a JSON pointer, `rule` the schema keyword. */
export class PayloadValidationError extends Error {
  constructor(
    readonly schema: string,
    readonly field: string,
    readonly rule: string,
    detail: string,
  ) {
    super(`${schema}: field ${field || '(root)'} ${detail} (rule: ${rule})`);
    this.name = 'PayloadValidationError';
  }
}

// One Ajv instance for every compiled validator; strict so that schema typos fail at start.
const ajv = new Ajv({ allErrors: false, strict: true, coerceTypes: false, useDefaults: false });
addFormats(ajv, ['uuid', 'date-time']);

export interface CompiledValidator<T> {
  readonly name: string;
  /** Narrows `data` or throws a {@link PayloadValidationError} naming the field and the rule. */
  assert(data: unknown): asserts data is T;
  is(data: unknown): data is T;
}

function describe(e: ErrorObject): string {
  if (e.keyword === 'required') return `is missing required property "${String(e.params.missingProperty)}"`;
  if (e.keyword === 'additionalProperties')
    return `has unexpected property "${String(e.params.additionalProperty)}"`;
  return e.message ?? 'is invalid';
}

export function compileValidator<S extends TSchema>(name: string, schema: S): CompiledValidator<Static<S>> {
  const validate = ajv.compile<Static<S>>(schema);
  return {
    name,
    is: (data: unknown): data is Static<S> => validate(data),
    assert(data: unknown): asserts data is Static<S> {
      if (validate(data)) return;
      const e = validate.errors![0]!;
      const field =
        e.keyword === 'required' ? `${e.instancePath}/${String(e.params.missingProperty)}` : e.instancePath;
      throw new PayloadValidationError(name, field, e.keyword, describe(e));
    },
  };
}
