/**
 * Split a SQL script (pg_dumpall output) into statements, respecting quotes,
 * dollar quoting and comments. Comment-only chunks and psql meta-commands
 * (lines starting with a backslash) are dropped.
 */
export function splitSql(script: string): string[] {
  const out: string[] = [];
  let cur = '';
  let i = 0;
  const n = script.length;
  const flush = (): void => {
    const s = cur.trim();
    if (s && !/^(--[^\n]*\n?\s*)*$/.test(s)) out.push(s);
    cur = '';
  };
  while (i < n) {
    const ch = script[i]!;
    const next = script[i + 1];
    // psql meta-command at the start of a line: skip the line
    if (ch === '\\' && cur.trim() === '' && (i === 0 || script[i - 1] === '\n')) {
      const eol = script.indexOf('\n', i);
      i = eol === -1 ? n : eol + 1;
      continue;
    }
    if (ch === '-' && next === '-') {
      const eol = script.indexOf('\n', i);
      const end = eol === -1 ? n : eol + 1;
      if (cur.trim() !== '') cur += script.slice(i, end);
      i = end;
      continue;
    }
    if (ch === '/' && next === '*') {
      let depth = 1;
      let j = i + 2;
      while (j < n && depth > 0) {
        if (script[j] === '/' && script[j + 1] === '*') {
          depth++;
          j += 2;
        } else if (script[j] === '*' && script[j + 1] === '/') {
          depth--;
          j += 2;
        } else j++;
      }
      cur += script.slice(i, j);
      i = j;
      continue;
    }
    if (ch === "'" || ch === '"') {
      const escapes = ch === "'" && /[eE]$/.test(cur) && !/[\w$]$/.test(cur.slice(0, -1));
      let j = i + 1;
      while (j < n) {
        if (escapes && script[j] === '\\') {
          j += 2;
          continue;
        }
        if (script[j] === ch) {
          if (script[j + 1] === ch) {
            j += 2;
            continue;
          }
          break;
        }
        j++;
      }
      cur += script.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    if (ch === '$') {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(script.slice(i, i + 64));
      if (m && !/[\w]$/.test(cur)) {
        const tag = m[0];
        const end = script.indexOf(tag, i + tag.length);
        const stop = end === -1 ? n : end + tag.length;
        cur += script.slice(i, stop);
        i = stop;
        continue;
      }
    }
    if (ch === ';') {
      cur += ';';
      flush();
      i++;
      continue;
    }
    cur += ch;
    i++;
  }
  flush();
  return out;
}
