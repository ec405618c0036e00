/**
 * The first two steps of the strategies that replicate into a complete
 * schema (pglogical, bucardo): roles, then the whole schema, pre- and
 * post-data, before any row arrives — they apply changes through the
 * target's keys.
 */
import { dumpFilterArgs } from '../filter';
import type { ConnInfo } from '../conn';
import { migrateGlobals } from '../globals';
import type { Preflight } from '../preflight';
import type { Step } from '../runner';
import type { ClientTools } from '../tools';
import type { StreamingOptions } from '../streaming/options';
import { restoreWholeSchema } from './schema';

export interface SchemaFirstContext {
  readonly source: ConnInfo;
  readonly target: ConnInfo;
  readonly pre: Preflight;
  readonly tools: ClientTools;
  readonly opts: StreamingOptions;
  readonly resumed: boolean;
  readonly doneBefore: ReadonlySet<string>;
  readonly schemaFile: string;
}

export function schemaFirstSteps<C extends SchemaFirstContext>(): Step<C>[] {
  return [
    {
      name: 'globals',
      what: 'roles and memberships, the target admin role left untouched',
      run: (ctx, emit) => migrateGlobals({ ...ctx, skip: ctx.opts.skipGlobals }, emit),
    },
    {
      name: 'schema',
      what: "the whole schema first (changes are applied through the target's keys)",
      async run(ctx, emit) {
        if (ctx.doneBefore.has('schema')) return { skipped: 'restored by the interrupted attempt' };
        const expected = await restoreWholeSchema(
          ctx.tools,
          ctx.source,
          ctx.target,
          ctx.schemaFile,
          { jobs: ctx.opts.jobs, force: ctx.opts.force, resumed: ctx.resumed, filter: dumpFilterArgs(ctx.pre.facts.filterPlan) },
          emit,
        );
        return { expectedErrors: expected };
      },
    },
  ];
}
