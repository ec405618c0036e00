/** Human-readable renderings of reports and findings. */
import type { Finding } from './check';
import type { CopyReport } from './copy/once';
import type { CutoverReport } from './streaming/cutover';
import type { SyncReport } from './strategies/logical/sync';
import type { PglogicalSyncReport } from './strategies/pglogical/sync';
import type { BucardoSyncReport } from './strategies/bucardo/sync';
import type { SyncOutcome } from './strategies';
import type { MigrationReport } from './strategies/dump-restore/run';
import type { RunEvent } from './runner';
import type { RunRecord, StepRecord } from './state';
import { formatBytes, formatDuration } from './units';
import type { VerifyResult } from './verify';

export function formatFindings(findings: readonly Finding[]): string {
  if (findings.length === 0) return 'No findings.';
  const tag = { error: 'ERROR  ', warning: 'WARNING', info: 'info   ' } as const;
  return findings.map((f) => `${tag[f.level]} ${f.message}${f.fix ? `\n        fix: ${f.fix}` : ''}`).join('\n');
}

export function formatVerification(v: VerifyResult & { stallSeconds?: number }): string {
  // At a pinned point (a streaming run), sequences and large objects are not compared: the cutover copies them.
  const pinned = v.stallSeconds !== undefined;
  const what = pinned
    ? `at a pinned point (writers held ${formatDuration(v.stallSeconds!)})`
    : `${v.sequences.length} sequences, ${v.largeObjects.source} large objects`;
  const lines = [
    `verification (${v.mode}): ${v.ok ? 'OK' : 'FAILED'} — ${v.tables.length} tables, ${v.rows.toLocaleString('en-US')} rows, ${what} in ${formatDuration(v.seconds)}`,
  ];
  for (const m of v.mismatches) lines.push(`  mismatch: ${m}`);
  if (v.extraOnTarget.length > 0) lines.push(`  only on target (ignored): ${v.extraOnTarget.join(', ')}`);
  return lines.join('\n');
}

export function formatReport(r: MigrationReport): string {
  const lines: string[] = [];
  lines.push(`pgrelocate ${r.strategy} — ${r.ok ? 'migration complete' : 'migration FAILED'} (run ${r.runId})`);
  lines.push(`  source  ${r.source.url}  ${r.source.version}, ${formatBytes(r.source.bytes)}, ${r.source.tables} tables`);
  lines.push(`  target  ${r.target.url}  ${r.target.version}`);
  lines.push('  steps');
  for (const s of r.steps)
    lines.push(
      `    ${s.name.padEnd(18)} ${formatDuration(s.seconds).padStart(9)}  ${s.status}${s.error ? ` — ${s.error.split('\n')[0]}` : ''}`,
    );
  lines.push(`    ${'total'.padEnd(18)} ${formatDuration(r.seconds).padStart(9)}`);
  if (r.throughputBytesPerSecond)
    lines.push(`  copy throughput     ${formatBytes(r.throughputBytesPerSecond)}/s (table data, dump + restore)`);
  lines.push(`  downtime            ${formatDuration(r.downtimeSeconds)} (dump-restore: writes must stay stopped for the whole run)`);
  if (r.verification) lines.push('  ' + formatVerification(r.verification).split('\n').join('\n  '));
  if (r.error) lines.push(`  error: ${r.error.message}\n  fix: ${r.error.fix}`);
  return lines.join('\n');
}

/** One line for a progress event, for a terminal. */
export function formatEvent(e: RunEvent): string {
  switch (e.type) {
    case 'step':
      return e.status === 'start' ? `→ ${e.name}` : `${e.status === 'done' ? '✓' : '✗'} ${e.name} (${formatDuration(e.seconds ?? 0)})`;
    case 'progress': {
      const amount = e.unit === 'bytes' ? `${formatBytes(e.done)} / ${formatBytes(e.total)}` : `${e.done} / ${e.total} ${e.unit}`;
      const pct = e.total > 0 ? ` ${((100 * e.done) / e.total).toFixed(0)}%` : '';
      const eta = e.etaSeconds !== null && e.done < e.total ? `, ETA ${formatDuration(e.etaSeconds)}` : '';
      return `  ${e.step}: ${amount}${pct}${eta}${e.note ? ` (${e.note})` : ''}`;
    }
    case 'log':
      return `  ${e.level === 'warn' ? 'warning: ' : ''}${e.message}`;
  }
}

/** What a sync on a streaming run made of the source's schema changes, and what it left. Pure. */
function schemaLines(s: { readonly applied: readonly string[]; readonly pending: readonly string[] }): string {
  return [
    ...s.applied.map((a) => `\n  schema: made on the target: ${a}`),
    ...s.pending.map((p) => `\n  schema: NOT made on the target: ${p}`),
    ...(s.pending.length ? ['\n  make those on the target (pgrelocate cutover names how); cutover refuses until they are'] : []),
  ].join('');
}

/** Sync (copy + streaming) report. */
export function formatSync(r: SyncReport): string {
  if (r.alreadyStreaming) {
    return `pgrelocate logical — run ${r.runId} is already streaming${r.lag ? `, ${formatBytes(r.lag.bytes)} behind` : ''}${schemaLines(r.schema)}`;
  }
  const lines = [`pgrelocate logical — ${r.resumed ? 'resumed and ' : ''}streaming (run ${r.runId})`, '  steps'];
  for (const s of r.steps) lines.push(`    ${s.name.padEnd(18)} ${formatDuration(s.seconds).padStart(9)}  ${s.status}`);
  if (r.copy) {
    lines.push(
      `  copy              ${r.copy.rows.toLocaleString('en-US')} rows, ${formatBytes(r.copy.bytes)} in ${formatDuration(r.copy.seconds)} ` +
        `(${formatBytes(r.copy.bytes / Math.max(r.copy.seconds, 0.001))}/s, ${r.copy.parts} parts, ${r.copy.tables} tables, ${r.copy.textTables.length} in text format)`,
    );
  }
  if (r.catchUpSeconds !== null) {
    lines.push(
      `  catch-up          ${formatDuration(r.catchUpSeconds)}${r.backlogBytes !== null ? ` (${formatBytes(r.backlogBytes)} of WAL written since the snapshot)` : ''}`,
    );
  }
  if (r.lag) lines.push(`  lag               ${formatBytes(r.lag.bytes)}`);
  lines.push('  next: pgrelocate cutover (when the application may pause for a few seconds)');
  return lines.join('\n');
}

export function formatPglogicalSync(r: PglogicalSyncReport): string {
  if (r.alreadyStreaming) {
    return `pgrelocate pglogical — run ${r.runId} is already replicating${r.lag ? `, ${formatBytes(r.lag.bytes)} behind` : ''}${schemaLines(r.schema)}`;
  }
  const lines = [`pgrelocate pglogical — ${r.resumed ? 'resumed and ' : ''}replicating (run ${r.runId})`, '  steps'];
  for (const s of r.steps) lines.push(`    ${s.name.padEnd(18)} ${formatDuration(s.seconds).padStart(9)}  ${s.status}`);
  lines.push(`  tables            ${r.tables} in ${r.batches} batch(es)`);
  if (r.insertOnly.length > 0) lines.push(`  insert-only       ${r.insertOnly.join(', ')} (no primary key; copied again at cutover)`);
  if (r.lag) lines.push(`  lag               ${formatBytes(r.lag.bytes)}`);
  lines.push('  next: pgrelocate cutover (when the application may pause for a few seconds)');
  return lines.join('\n');
}

export function formatBucardoSync(r: BucardoSyncReport): string {
  if (r.alreadyStreaming) return `pgrelocate bucardo — run ${r.runId} is already replicating${schemaLines(r.schema)}`;
  const lines = [`pgrelocate bucardo — ${r.resumed ? 'resumed and ' : ''}replicating (run ${r.runId})`, '  steps'];
  for (const s of r.steps) lines.push(`    ${s.name.padEnd(18)} ${formatDuration(s.seconds).padStart(9)}  ${s.status}`);
  const by = r.steps.some((s) => s.name === 'onetimecopy') ? 'Bucardo' : "pgrelocate's parallel copy (Bucardo carries the changes)";
  lines.push(`  tables            ${r.tables}${r.copySeconds !== null ? `, first copy by ${by} in ${formatDuration(r.copySeconds)}` : ''}`);
  if (r.fullCopy.length > 0) lines.push(`  full copy         ${r.fullCopy.join(', ')} (no primary key; copied at cutover)`);
  lines.push('  next: pgrelocate cutover (when the application may pause for a few seconds)');
  return lines.join('\n');
}

/** Cutover report: the write-blackout first. */
export function formatCutover(r: CutoverReport): string {
  const lines = [
    `pgrelocate — cutover complete (run ${r.runId})`,
    `  write-blackout    ${formatDuration(r.blackoutSeconds)} (fence → switch: writers waited, none failed)`,
    '  steps',
  ];
  for (const s of r.steps) lines.push(`    ${s.name.padEnd(18)} ${formatDuration(s.seconds).padStart(9)}`);
  lines.push(
    `  before the fence  ${r.precopiedRows} rows of tables replication does not carry, ${r.precopiedLargeObjects} large objects copied; ${r.matviews} materialized views refreshed`,
    `  inside it         ${r.sequences} sequences; written since: ${r.unloggedRows} unlogged rows, ${r.keylessRows ? `${r.keylessRows} rows of key-less tables, ` : ''}${r.largeObjects} large objects`,
  );
  lines.push(
    `  fence             ${r.fencedTables} tables locked${r.lockWaitSeconds ? ` (after ${formatDuration(r.lockWaitSeconds)} for writes in flight)` : ''}; ${r.terminatedSessions} sessions ended${r.keptSessions ? `, ${r.keptSessions} kept (their writes are refused)` : ''}`,
  );
  if (r.verification) lines.push('  ' + formatVerification(r.verification).split('\n').join('\n  '));
  lines.push(`  new target        ${r.newTarget}  (the source stays read-only)`);
  return lines.join('\n');
}

/** One-time copy report. */
export function formatCopy(r: CopyReport): string {
  const lines = [`pgrelocate copy — done in ${formatDuration(r.seconds)} (run ${r.runId})`, '  steps'];
  for (const s of r.steps) lines.push(`    ${s.name.padEnd(18)} ${formatDuration(s.seconds).padStart(9)}  ${s.status}`);
  if (r.copy) {
    lines.push(
      `  data              ${r.copy.rows.toLocaleString('en-US')} rows, ${formatBytes(r.copy.bytes)} in ${formatDuration(r.copy.seconds)} (${formatBytes(r.copy.bytes / Math.max(r.copy.seconds, 0.001))}/s, ${r.copy.parts} parts)`,
    );
  }
  return lines.join('\n');
}

/**
 * What `status` says about who is working on a run and, for a run whose
 * process died, the command that continues it. A fence is always named. Pure.
 */
export function formatLiveness(run: Pick<RunRecord, 'status' | 'strategy' | 'holder' | 'meta'>): string[] {
  const meta = (run.meta ?? {}) as { phase?: string; fence?: { state?: string } | null };
  const lines: string[] = [];
  const held = meta.fence?.state === 'held';
  if (meta.fence && !held)
    lines.push(
      `  the source is FENCED: its applications cannot write.${meta.phase === 'done' ? ' Lift it with' : ' Finish with: pgrelocate cutover; or lift it with'}: pgrelocate cleanup --unfence (with --source and --target)`,
    );
  else if (held && run.holder)
    lines.push(
      '  the cutover holds its write fence: writers on the source wait; it lifts by itself if pgrelocate stops or passes --max-blackout',
    );
  else if (held)
    lines.push('  the cutover stopped inside its write fence, which ended with its session: the source is writable and replication runs');
  if (run.holder) lines.push(`  in progress: ${run.holder.holder}, connected since ${run.holder.since}`);
  else if (run.status === 'running' && meta.phase === 'streaming' && !meta.fence)
    lines.push('  streaming: the servers replicate on their own, no pgrelocate process is needed. Next: pgrelocate cutover');
  else if (run.status === 'running') {
    const next =
      run.strategy === 'copy'
        ? 'pgrelocate copy --force (starts the copy again)'
        : run.strategy === 'dump-restore'
          ? 'pgrelocate migrate --strategy dump-restore --force (starts it again)'
          : meta.phase === 'copy'
            ? 'pgrelocate sync (resumes it)'
            : 'pgrelocate cutover';
    lines.push(`  no pgrelocate process is working on this run: the one that ran it stopped. Continue with: ${next}`);
  }
  return lines;
}

/** One step of `status`: its state and time, and for a running step the progress it last recorded. Pure. */
export function formatStepStatus(s: StepRecord, now = Date.now()): string {
  const took = s.finishedAt ? ` (${((Date.parse(s.finishedAt) - Date.parse(s.startedAt)) / 1000).toFixed(1)}s)` : '';
  const line = `  ${s.name.padEnd(18)} ${s.status}${took}`;
  const p = s.progress;
  if (s.status !== 'running' || !p) return line;
  const amount = (n: number): string => (p.unit === 'bytes' ? formatBytes(n) : `${Math.round(n).toLocaleString('en-US')} ${p.unit}`);
  const pct = p.total > 0 ? ` (${Math.min(100, Math.floor((p.done / p.total) * 100))}%)` : '';
  const eta = p.etaSeconds !== null ? `, ETA ${formatDuration(p.etaSeconds)}` : '';
  const age = Math.max(0, (now - Date.parse(p.at)) / 1000);
  return `${line}: ${amount(p.done)} of ${amount(p.total)}${pct}, ${amount(p.rate)}/s${eta}${p.note ? ` — ${p.note}` : ''} (${formatDuration(age)} ago)`;
}

/** A sync's report as text, whichever strategy ran it. */
export function formatSyncOutcome(s: SyncOutcome): string {
  switch (s.strategy) {
    case 'logical':
      return formatSync(s.report);
    case 'pglogical':
      return formatPglogicalSync(s.report);
    case 'bucardo':
      return formatBucardoSync(s.report);
  }
}
