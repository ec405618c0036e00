import assert from 'node:assert/strict';
import { runChecks } from '../../engine/check';
import { ERROR_CODES, ExitCode, PgrelocateError } from '../../engine/errors';
import { opt, setFrontEnd } from '../../engine/option-names';
import { inventory, tableInfo } from '../helpers/fixtures';

describe('typed failures', function () {
  it('every error code has its exit code in one table', function () {
    const exits = new Set<number>(Object.values(ExitCode));
    for (const [code, exit] of Object.entries(ERROR_CODES)) assert.ok(exits.has(exit), code);
    assert.equal(new PgrelocateError('verify-failed', 'm', 'f').exitCode, ExitCode.verifyFailed);
    assert.equal(new PgrelocateError('run-busy', 'm', 'f').exitCode, ExitCode.busy);
    assert.equal(new PgrelocateError('bad-url', 'm', 'f').exitCode, ExitCode.usage);
    assert.equal(new PgrelocateError('auth-failed', 'm', 'f').exitCode, ExitCode.connection);
    assert.equal(new PgrelocateError('apply-timeout', 'm', 'f').exitCode, ExitCode.migrationFailed);
  });

  it('fixes name the option as the front end spells it: a CLI flag, or the Pulumi config key', function () {
    assert.equal(opt('maxLag', 'cli'), '--max-lag');
    assert.equal(opt('maxLag', 'pulumi'), 'pgrelocate:options.maxLag');
    assert.equal(opt('strategy', 'pulumi'), 'pgrelocate:strategy');
    assert.match(opt('force', 'pulumi'), /the CLI's --force/);
    const keyless = tableInfo('events', { primaryKey: [], replicaIdentity: 'd', hasUsableUniqueIndex: false });
    const inv = (major: number) => inventory(major, { tables: [keyless], superuser: true });
    const fix = () =>
      runChecks({
        source: inv(14),
        target: inv(17),
        strategy: 'logical',
        force: false,
        sameEndpoint: false,
        tools: { major: 17, version: '17' },
      }).find((x) => x.code === 'no-replica-identity')!.fix;
    try {
      setFrontEnd('pulumi');
      assert.match(fix(), /pass pgrelocate:options\.replicaIdentityFull .* or use pgrelocate:strategy dump-restore/);
    } finally {
      setFrontEnd('cli');
    }
    assert.match(fix(), /pass --replica-identity-full .* or use --strategy dump-restore/);
  });
});
