/** Human-readable renderings of reports and findings. */
import type { Finding } from './check';
import type { MigrationReport } from './migrate';
import type { RunEvent } from './runner';
import { formatBytes, formatDuration } from './units';
import type { VerifyResult } from './verify';

export function formatFindings(findings: readonly Finding[]): string {
  if (findings.length === 0) return 'No findings.';
  const tag = { error: 'ERROR  ', warning: 'WARNING', info: 'info   ' } as const;
  return findings.map((f) => `${tag[f.level]} ${f.message}${f.fix ? `\n        fix: ${f.fix}` : ''}`).join('\n');
}

export function formatVerification(v: VerifyResult): string {
  const lines = [
    `verification (${v.mode}): ${v.ok ? 'OK' : 'FAILED'} — ${v.tables.length} tables, ${v.rows.toLocaleString('en-US')} rows, ` +
      `${v.sequences.length} sequences, ${v.largeObjects.source} large objects in ${formatDuration(v.seconds)}`,
  ];
  for (const m of v.mismatches) lines.push(`  mismatch: ${m}`);
  if (v.extraOnTarget.length > 0) lines.push(`  only on target (ignored): ${v.extraOnTarget.join(', ')}`);
  return lines.join('\n');
}

export function formatReport(r: MigrationReport): string {
  const lines: string[] = [];
  lines.push(`pgferry ${r.strategy} — ${r.ok ? 'migration complete' : 'migration FAILED'} (run ${r.runId})`);
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
