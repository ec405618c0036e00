/**
 * The watchdog of a paused PgBouncer (see pgbouncer.ts), run as its own
 * process: it RESUMEs the database when the pgrelocate that paused it dies
 * (the pipe on stdin closes without "disarm") or when the deadline passes,
 * so a pause never outlives pgrelocate's control. Its configuration comes in
 * the environment (PGRELOCATE_WATCHDOG), never on the command line.
 */
import type { ConnInfo } from '../conn';
import { resume } from './pgbouncer';

interface Config {
  readonly admin: ConnInfo;
  readonly database: string;
  /** Epoch milliseconds. */
  readonly deadline: number;
}

const cfg = JSON.parse(process.env['PGRELOCATE_WATCHDOG'] ?? '{}') as Config;
let settled = false;

async function act(): Promise<void> {
  if (settled) return;
  settled = true;
  // A few tries: the console may be briefly busy with the PAUSE that was in flight.
  for (let i = 0; i < 10; i++) {
    try {
      await resume(cfg.admin, cfg.database);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  process.exit(0);
}

let input = '';
process.stdin.on('data', (d: Buffer) => {
  input += d.toString();
  if (input.includes('disarm')) {
    settled = true;
    process.exit(0);
  }
});
process.stdin.on('end', () => void act());
process.stdin.on('error', () => void act());
setTimeout(() => void act(), Math.max(0, cfg.deadline - Date.now()));
