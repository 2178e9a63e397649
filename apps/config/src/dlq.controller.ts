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
  ParseIntPipe,
  Post,
  Query,
} from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { Type, type Static } from '@sinclair/typebox';
import { compileValidator, type CompiledValidator, type PayloadValidationError } from '@iot/contracts';
import { InvalidTenantError, type DeadLetterStore, type Selection } from '@iot/dlq-data-access';

export const DLQ_STORE = Symbol('DeadLetterStore');

const SelectionSchema = Type.Object(
  {
    seqs: Type.Optional(Type.Array(Type.Integer({ minimum: 1 }), { minItems: 1, maxItems: 1000 })),
    all: Type.Optional(Type.Literal(true)),
    stage: Type.Optional(Type.String({ maxLength: 64 })),
    reason: Type.Optional(Type.String({ maxLength: 64 })),
    device: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);
const selectionValidator: CompiledValidator<Static<typeof SelectionSchema>> = compileValidator(
  'request body',
  SelectionSchema,
);

function selectionOf(body: unknown): Selection {
  try {
    selectionValidator.assert(body);
  } catch (e) {
    throw new BadRequestException((e as PayloadValidationError).message);
  }
  const b = body;
  if (b.seqs) return { seqs: b.seqs };
  if (b.all) return { all: true, filter: { stage: b.stage, reason: b.reason, device: b.device } };
  throw new BadRequestException(
    'say which messages: {"seqs": [1, 2]}, or {"all": true} with optional stage, reason and device filters',
  );
}

async function scoped<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof InvalidTenantError) throw new BadRequestException(e.message);
    throw e;
  }
}

/** The dead-letter queue of one tenant: list, inspect, replay (one, a filter, or all) and purge. */
@ApiTags('dead-letter queue')
// Reads need viewer, replay and purge operator (the guard's defaults).
@ApiBearerAuth()
@Controller('v1/tenants/:tenant/dlq')
export class DlqController {
  constructor(@Inject(DLQ_STORE) private readonly store: DeadLetterStore) {}

  @Get()
  @ApiOperation({ summary: "List the tenant's DLQ messages, oldest first (page with after_seq)" })
  @ApiQuery({ name: 'stage', required: false, description: 'mqtt-bridge, demux, normalizer, tsdb-writer' })
  @ApiQuery({
    name: 'reason',
    required: false,
    description: 'unknown-device, invalid-payload, max-deliveries, ...',
  })
  @ApiQuery({ name: 'device', required: false })
  @ApiQuery({ name: 'after_seq', required: false, type: Number })
  @ApiQuery({ name: 'limit', required: false, type: Number, description: 'at most 1000; default 100' })
  list(
    @Param('tenant') tenant: string,
    @Query('stage') stage?: string,
    @Query('reason') reason?: string,
    @Query('device') device?: string,
    @Query('after_seq') afterSeq?: string,
    @Query('limit') limit?: string,
  ) {
    const num = (name: string, v?: string) => {
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0)
        throw new BadRequestException(`query parameter ${name}="${v}" must be a non-negative integer`);
      return n;
    };
    return scoped(() =>
      this.store.list(
        tenant,
        { stage, reason, device },
        { afterSeq: num('after_seq', afterSeq), limit: num('limit', limit) },
      ),
    );
  }

  @Get(':seq')
  @ApiOperation({ summary: 'One DLQ message with its headers and payload' })
  async get(@Param('tenant') tenant: string, @Param('seq', ParseIntPipe) seq: number) {
    const m = await scoped(() => this.store.get(tenant, seq));
    if (!m) throw new NotFoundException(`no DLQ message ${seq} in tenant "${tenant}"`);
    return m;
  }

  @Post('replay')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Send messages through the normal path again; each leaves the DLQ once republished',
  })
  @ApiBody({ schema: { example: { seqs: [12, 13] } } })
  replay(@Param('tenant') tenant: string, @Body() body: unknown) {
    return scoped(() => this.store.replay(tenant, selectionOf(body)));
  }

  @Post('purge')
  @HttpCode(200)
  @ApiOperation({ summary: 'Delete messages from the DLQ for good' })
  @ApiBody({ schema: { example: { all: true, reason: 'invalid-payload' } } })
  purge(@Param('tenant') tenant: string, @Body() body: unknown) {
    return scoped(() => this.store.purge(tenant, selectionOf(body)));
  }

  @Delete(':seq')
  @ApiOperation({ summary: 'Delete one message from the DLQ' })
  async purgeOne(@Param('tenant') tenant: string, @Param('seq', ParseIntPipe) seq: number) {
    const { purged } = await scoped(() => this.store.purge(tenant, { seqs: [seq] }));
    if (purged.length === 0) throw new NotFoundException(`no DLQ message ${seq} in tenant "${tenant}"`);
    return { purged };
  }
}
