/**
 * Strategy `bucardo`: trigger-based, for sources that allow no replication
 * (Heroku). Bucardo has no byte lag: the lag gate is one sync run that ends in
 * time, and the final sync is two runs that start after the fence. Its own
 * sessions are spared by the fence; key-less tables are copied again inside it.
 */
import { opt } from '../../option-names';
import { PgrelocateError } from '../../errors';
import type { StreamingHooks } from '../../streaming/hooks';
import type { StreamingMeta } from '../../streaming/options';
import { parseStatus } from './control';
import type { BucardoMeta } from './meta';
import { controlFor } from './sync';
import { removeBucardo } from './teardown';

export { bucardoSync, type BucardoSyncReport } from './sync';

export type BucardoRunMeta = StreamingMeta & { bucardo: BucardoMeta };

export const bucardo: StreamingHooks<BucardoRunMeta> = {
  name: 'bucardo',
  async lagGate(c) {
    const b = c.meta.bucardo;
    const kicked = await controlFor(b).kick(b.sync, c.opts.catchUpTimeout * 1000);
    if (kicked !== 'done')
      throw new PgrelocateError(
        'lag-too-high',
        `Bucardo's sync ${b.sync} did not finish a run within ${c.opts.catchUpTimeout}s (${kicked}); nothing was fenced.`,
        `Wait until it keeps up (bucardo status), or raise ${opt('catchUpTimeout')}.`,
      );
    return { kicked };
  },
  fenceSpares: 'bucardo %',
  finalSync: {
    name: 'final-sync',
    async run(c) {
      const b = c.meta.bucardo;
      // Writes are fenced: a sync run that starts after this carries everything committed before the fence.
      // Two completions: the first may belong to a run that began before the fence.
      const r = await controlFor(b).kick(b.sync, c.opts.applyTimeout * 1000, 2);
      if (r !== 'done')
        throw new PgrelocateError(
          'apply-timeout',
          `Bucardo's sync ${b.sync} did not finish within ${c.opts.applyTimeout}s once writes were fenced (${r}).`,
          `Check Bucardo (bucardo status ${b.sync}, its log in ${b.dir}) and retry the cutover.`,
        );
    },
  },
  // Bucardo cannot track key-less tables at all.
  recopy: (meta) => meta.bucardo.fullCopy,
  recopyUnreplicated: true,
  async removeReplication(c) {
    await removeBucardo(controlFor(c.meta.bucardo), c.meta.bucardo, c.src, c.dst);
  },
  async cleanup(src, dst, meta, opts) {
    return meta ? removeBucardo(controlFor(meta.bucardo, opts.bucardoUrl), meta.bucardo, src, dst) : [];
  },
  async status(_source, _target, meta) {
    // No slot: Bucardo's own view of its sync (through the control server's passfile, while its directory exists).
    const b = meta.bucardo;
    const status = await controlFor(b)
      .run(['status', b.sync], { allowExit: [1] })
      .then((r) => Object.fromEntries(parseStatus(r.stdout)))
      .catch((e: Error) => ({ error: e.message }));
    return { lag: null, targetLagSeconds: null, bucardo: status };
  },
};
