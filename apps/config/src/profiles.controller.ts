import {
  BadRequestException,
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Inject,
  NotFoundException,
  Param,
  Post,
  Put,
} from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Roles } from '@iot/auth-guard';
import {
  isValidToken,
  normalizerProfileKey,
  Validators,
  type ModelProfile,
  type PayloadValidationError,
} from '@iot/contracts';
import type { VersionedKv } from '@iot/messaging';
import { specProblem } from '@iot/normalizer-domain';

export const PROFILES = Symbol('NormalizerProfiles');

function checkedId(name: 'tenant' | 'model', v: string): string {
  if (!isValidToken(v))
    throw new BadRequestException(`${name} "${v}" is not a valid id: use 1-64 letters, digits, "_" or "-"`);
  return v;
}

function keyOf(tenant: string, model: string): string {
  return normalizerProfileKey(checkedId('tenant', tenant), checkedId('model', model));
}

/** Checks a profile as the normalizer will use it; a 400 names the field and what to send. */
function profileOf(model: string, body: unknown): ModelProfile {
  const candidate =
    body && typeof body === 'object' && !Array.isArray(body) ? { model, ...(body as object) } : body;
  try {
    Validators.modelProfile.assert(candidate);
  } catch (e) {
    throw new BadRequestException((e as PayloadValidationError).message);
  }
  if (candidate.model !== model)
    throw new BadRequestException(`body names model "${candidate.model}" but the path says "${model}"`);
  const problems = Object.entries(candidate.metrics)
    .map(([metric, spec]) => specProblem(metric, spec))
    .filter((p): p is string => p !== undefined);
  if (problems.length > 0) throw new BadRequestException(problems.join('; '));
  return candidate;
}

/**
 * A tenant's normalizer profiles: per device model, the metrics' units, scale and offset,
 * valid range, deadband and renames, overriding the built-in profile metric by metric. Every
 * change is a new revision; the normalizer picks it up within a second, without a restart.
 */
@ApiTags('normalizer profiles')
@ApiBearerAuth()
@Controller('v1/tenants/:tenant/profiles')
export class ProfilesController {
  constructor(@Inject(PROFILES) private readonly profiles: VersionedKv<ModelProfile>) {}

  @Get()
  @ApiOperation({ summary: 'The device models for which the tenant has its own profile' })
  async list(@Param('tenant') tenant: string) {
    const prefix = normalizerProfileKey(checkedId('tenant', tenant), '');
    const keys = await this.profiles.keys(`${prefix}*`);
    return { models: keys.map((k) => k.slice(prefix.length)) };
  }

  @Get(':model')
  @ApiOperation({ summary: "The tenant's current profile for a model, with its revision" })
  async get(@Param('tenant') tenant: string, @Param('model') model: string) {
    const v = await this.profiles.get(keyOf(tenant, model));
    if (!v) throw new NotFoundException(`tenant "${tenant}" has no profile for model "${model}"`);
    return { revision: v.revision, updated_at: v.at, profile: v.value };
  }

  @Put(':model')
  // How a tenant's data is converted is the tenant admin's decision.
  @Roles('admin')
  @ApiOperation({ summary: 'Set the profile (a new revision); the normalizer applies it at once' })
  @ApiBody({
    schema: {
      example: {
        metrics: {
          soil_moisture: { unit: '%', sourceUnit: '{count}', scale: 0.02442, min: 0, max: 100 },
          temperature: { unit: 'Cel', sourceUnit: '[degF]' },
        },
      },
    },
  })
  async put(@Param('tenant') tenant: string, @Param('model') model: string, @Body() body: unknown) {
    const key = keyOf(tenant, model);
    const profile = profileOf(model, body);
    return { revision: await this.profiles.put(key, profile), profile };
  }

  @Delete(':model')
  @Roles('admin')
  @ApiOperation({ summary: "Remove the tenant's profile: the model's built-in profile applies again" })
  async remove(@Param('tenant') tenant: string, @Param('model') model: string) {
    if (!(await this.profiles.delete(keyOf(tenant, model))))
      throw new NotFoundException(`tenant "${tenant}" has no profile for model "${model}"`);
    return { deleted: model };
  }

  @Get(':model/history')
  @ApiOperation({ summary: 'Earlier revisions of the profile, newest first' })
  async history(@Param('tenant') tenant: string, @Param('model') model: string) {
    return { revisions: await this.profiles.history(keyOf(tenant, model)) };
  }

  @Post(':model/rollback')
  @Roles('admin')
  @HttpCode(200)
  @ApiOperation({ summary: 'Restore an earlier revision as a new revision' })
  @ApiBody({ schema: { example: { revision: 3 } } })
  async rollback(@Param('tenant') tenant: string, @Param('model') model: string, @Body() body: unknown) {
    const wanted = (body as { revision?: unknown } | undefined)?.revision;
    if (!Number.isInteger(wanted))
      throw new BadRequestException('say which revision to restore: {"revision": 3} (see .../history)');
    const key = keyOf(tenant, model);
    const old = (await this.profiles.history(key)).find((v) => v.revision === wanted);
    if (!old?.value)
      throw new NotFoundException(
        `revision ${String(wanted)} of tenant "${tenant}"'s profile for "${model}" is not kept (deleted, or older than the history)`,
      );
    return { revision: await this.profiles.put(key, old.value), restored: wanted, profile: old.value };
  }
}
