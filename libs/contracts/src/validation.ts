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

/**
 * A string pattern: no control characters (NUL, tab, line breaks, DEL). PostgreSQL refuses a
 * NUL in text and a NATS header a line break, so a unit or an id holding one would fail a
 * later stage, far from the device, instead of being refused where the error names the field.
 */
export const NO_CONTROL_CHARACTERS = '^[^\\x00-\\x1f\\x7f]*$';

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
  if (e.keyword === 'pattern' && e.params.pattern === NO_CONTROL_CHARACTERS)
    return 'holds a control character (NUL, tab, line break or DEL): send printable text';
  return e.message ?? 'is invalid';
}

const fieldOf = (e: ErrorObject): string =>
  e.keyword === 'required' ? `${e.instancePath}/${String(e.params.missingProperty)}` : e.instancePath;

/**
 * The error that says most: where a value matches none of a union's branches (a reading is a
 * number or `{value, unit}`), Ajv reports each branch's failure and then `anyOf`; the deepest
 * field is the branch the sender meant (`/readings/t/unit`, not "/readings/t must be number").
 */
function mostSpecific(errors: ErrorObject[]): { e: ErrorObject; field: string } {
  let best = { e: errors[0]!, field: fieldOf(errors[0]!) };
  for (const e of errors) {
    if (e.keyword === 'anyOf' || e.keyword === 'oneOf') continue;
    const field = fieldOf(e);
    if (field.split('/').length > best.field.split('/').length) best = { e, field };
  }
  return best;
}

export function compileValidator<S extends TSchema>(name: string, schema: S): CompiledValidator<Static<S>> {
  const validate = ajv.compile<Static<S>>(schema);
  return {
    name,
    is: (data: unknown): data is Static<S> => validate(data),
    assert(data: unknown): asserts data is Static<S> {
      if (validate(data)) return;
      const { e, field } = mostSpecific(validate.errors!);
      throw new PayloadValidationError(name, field, e.keyword, describe(e));
    },
  };
}
