/** The local server module: real servers of several majors, as the tests and the rehearsal use them. */
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { availableMajors } from '../../engine/local/binaries';
import { startServer } from '../../engine/local/cluster';
import { sql } from '../helpers/servers';

describe('local servers', function () {
  it('has PostgreSQL 11, 12, 14, 16 and 17 from npm', function () {
    const majors = availableMajors();
    for (const m of [11, 12, 14, 16, 17]) assert.ok(majors.includes(m), `PostgreSQL ${m} in ${majors.join(', ')}`);
  });

  for (const major of availableMajors()) {
    it(`starts PostgreSQL ${major} on 127.0.0.1 with wal_level=logical, as a non-root user, and stops cleanly`, async function () {
      const s = await startServer({ major, name: 'lifecycle' });
      try {
        const [row] = await sql<{ v: string; wal: string; listen: string; usr: string }>(
          s.conn(),
          `SELECT current_setting('server_version_num') AS v, current_setting('wal_level') AS wal,
                  current_setting('listen_addresses') AS listen, current_setting('data_directory') AS usr`,
        );
        assert.equal(Math.floor(Number(row!.v) / 10000), major);
        assert.equal(row!.wal, 'logical');
        assert.equal(row!.listen, '127.0.0.1');
        if (process.getuid?.() === 0) assert.notEqual(statSync(s.dataDir).uid, 0, 'data directory not owned by root');
        await assert.rejects(sql({ ...s.conn(), password: 'wrong' }, 'SELECT 1'), /password authentication failed/);
      } finally {
        await s.stop();
      }
      assert.equal(existsSync(s.dataDir), false, 'data directory removed');
    });
  }
});
