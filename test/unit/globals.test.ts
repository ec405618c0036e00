import assert from 'node:assert/strict';
import { planGlobals } from '../../engine/globals';

const DUMP = `
SET default_transaction_read_only = off;
CREATE ROLE aptible;
ALTER ROLE aptible WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:x';
CREATE ROLE app;
ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'md5abc';
CREATE ROLE "Reporting";
ALTER ROLE "Reporting" WITH NOSUPERUSER LOGIN REPLICATION;
CREATE ROLE rdsadmin;
ALTER ROLE rdsadmin WITH SUPERUSER;
ALTER ROLE app SET search_path TO app, public;
CREATE TABLESPACE fast OWNER app LOCATION '/ssd';
GRANT "Reporting" TO app GRANTED BY aptible;
`;

describe('planGlobals (seed 000/001 rules)', function () {
  const plan = planGlobals(DUMP, { admin: 'aptible', isSuperuser: false, existingRoles: new Set(['aptible', 'app', 'rdsadmin']) });
  const find = (re: RegExp) => plan.filter((p) => re.test(p.sql));

  it("never touches the target admin role's password or attributes", function () {
    for (const p of find(/ROLE aptible/)) assert.equal(p.action, 'skip');
  });

  it('skips CREATE ROLE for roles that exist, but applies their attributes', function () {
    assert.equal(find(/^CREATE ROLE app;/)[0]!.action, 'skip');
    assert.equal(find(/^ALTER ROLE app WITH/)[0]!.action, 'run');
    assert.equal(find(/^CREATE ROLE "Reporting"/)[0]!.action, 'run');
  });

  it('drops superuser-only attributes when the target user is not a superuser, saying so', function () {
    const r = find(/^ALTER ROLE "Reporting"/)[0]!;
    assert.equal(r.action, 'run');
    assert.doesNotMatch(r.sql, /REPLICATION/);
    assert.match(r.sql, /LOGIN/);
    assert.match(r.reason!, /REPLICATION/);
    // NOREPLICATION etc. are dropped too: a non-superuser may not even restate them.
    assert.doesNotMatch(find(/^ALTER ROLE app WITH/)[0]!.sql, /REPLICATION|BYPASSRLS|SUPERUSER/);
  });

  it('skips managed-service roles and tablespaces, keeps settings and grants', function () {
    for (const p of find(/rdsadmin/)) assert.equal(p.action, 'skip');
    assert.equal(find(/TABLESPACE/)[0]!.action, 'skip');
    assert.equal(find(/SET search_path/)[0]!.action, 'run');
    assert.equal(find(/^GRANT/)[0]!.action, 'run');
  });

  it('keeps attributes as they are for a superuser target', function () {
    const p = planGlobals(DUMP, { admin: 'postgres', isSuperuser: true, existingRoles: new Set() });
    assert.match(p.find((x) => /^ALTER ROLE "Reporting"/.test(x.sql))!.sql, /REPLICATION/);
  });
});
