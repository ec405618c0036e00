/**
 * PostgreSQL refuses to run as root. When pgrelocate runs as root (as it does on
 * these machines and in CI), local servers run as an unprivileged OS user.
 */
import { readFileSync } from 'node:fs';

export interface OsUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** Look a user up in /etc/passwd (Node has no getpwnam). */
export function lookupUser(name: string, passwd = '/etc/passwd'): OsUser | undefined {
  let text: string;
  try {
    text = readFileSync(passwd, 'utf8');
  } catch {
    return undefined;
  }
  return parsePasswd(text).find((u) => u.name === name);
}

export function parsePasswd(text: string): OsUser[] {
  const users: OsUser[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || line.startsWith('#')) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (Number.isInteger(uid) && Number.isInteger(gid)) users.push({ name: f[0] ?? '', uid, gid });
  }
  return users;
}

/**
 * The OS user that local servers run as: the current user when not root, else
 * `PGRELOCATE_OS_USER` or `postgres` (created by Debian's postgresql packages).
 */
export function serverOsUser(): OsUser | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const name = process.env['PGRELOCATE_OS_USER'] ?? 'postgres';
  const user = lookupUser(name);
  if (!user) {
    throw new Error(
      `Running as root, local PostgreSQL servers need an unprivileged OS user "${name}", which does not exist. ` +
        `Fix: apt-get install -y postgresql-15 (creates "postgres"), or useradd --system ${name}, or set PGRELOCATE_OS_USER.`,
    );
  }
  if (user.uid === 0) throw new Error(`PGRELOCATE_OS_USER "${name}" is root; PostgreSQL refuses to run as root.`);
  return user;
}
