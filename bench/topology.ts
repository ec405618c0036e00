/**
 * Where the bench's methods run. `one-box`: the tools, pgrelocate and both
 * servers on loopback, as every figure before this was taken. `netns:…`: the
 * tools and pgrelocate (the worker) in a network namespace of their own,
 * joined to the machine by a veth pair per server with a bandwidth cap (tc
 * `tbf`) on both ends, and each server reached through a proxy that holds
 * every chunk for the link's round trip before passing it on. Per-object
 * round trips and the relay's latency then cost what they would between
 * hosts (a worker 1 ms from RDS, a source 20 ms away at another provider).
 *
 * Why a proxy and not `tc netem`: this machine's kernel has no netem (nor fq),
 * `tc qdisc add … netem` answers "Specified qdisc kind is unknown"; tbf is
 * there. Every method sends its traffic through the worker (none connects
 * the two servers), so the servers stay on loopback behind their proxies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { execa } from 'execa';

export interface TopologySpec {
  /** As given: `one-box`, `netns:20ms`, `netns:20ms/1ms`. */
  readonly name: string;
  /** Null for one-box; else each link's round trip in milliseconds. */
  readonly links: { readonly sourceRttMs: number; readonly targetRttMs: number } | null;
}

/** `one-box,netns:1ms,netns:20ms/1ms` → specs. Source round trip first, target second. Pure. */
export function parseTopologies(list: string): TopologySpec[] {
  return list
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)
    .map((name) => {
      if (name === 'one-box') return { name, links: null };
      const m = /^netns:(\d+(?:\.\d+)?)ms(?:\/(\d+(?:\.\d+)?)ms)?$/.exec(name);
      if (!m)
        throw new Error(
          `Unknown topology "${name}". Fix: --topology one-box, netns:<rtt>ms (both links) or netns:<source rtt>ms/<target rtt>ms, comma-separated.`,
        );
      const sourceRttMs = Number(m[1]);
      return { name, links: { sourceRttMs, targetRttMs: m[2] !== undefined ? Number(m[2]) : sourceRttMs } };
    });
}

/** The bandwidth cap on one end of a link (tc's rate syntax, e.g. `1gbit`), with a burst and queue that shape rather than drop. Pure. */
export function tbfArgs(dev: string, rate: string): string[] {
  return ['qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', rate, 'burst', '256kb', 'latency', '50ms'];
}

/** The worker's namespace and its two links; `close` removes them (the veth pairs go with the namespace). */
export class WorkerNamespace {
  private constructor(
    readonly ns: string,
    /** The machine's end of each link: the server's proxy listens there, the worker connects to it. */
    readonly sourceAddress: string,
    readonly targetAddress: string,
    private readonly devs: { readonly root: string; readonly inside: string }[],
  ) {}

  /** Make the namespace and the links (root only), with addresses in a 10.x.y.0/24 free on the machine. */
  static async create(rate: string): Promise<WorkerNamespace> {
    if (process.getuid?.() !== 0)
      throw new Error('A netns topology needs root (ip netns, tc). Fix: run the bench as root, or --topology one-box.');
    const tag = `pgrb${process.pid % 100000}`;
    const ns = `${tag}-worker`;
    const used = (await execa('ip', ['-o', 'addr'], { reject: false })).stdout;
    let net = '';
    for (let i = 0; i < 64 && !net; i++) {
      const candidate = `10.${200 + ((process.pid + i) % 50)}.${(process.pid * 7 + i) % 250}`;
      if (!used.includes(` ${candidate}.`)) net = candidate;
    }
    if (!net)
      throw new Error('No free 10.x.y.0/24 network for the bench links. Fix: remove stale links (ip -o addr), or --topology one-box.');
    const links = [
      { root: `${tag}s`, inside: `${tag}sw`, host: 1 },
      { root: `${tag}t`, inside: `${tag}tw`, host: 5 },
    ];
    const run = async (file: string, args: string[]): Promise<void> => {
      const r = await execa(file, args, { reject: false });
      if (r.exitCode !== 0) throw new Error(`${file} ${args.join(' ')} failed: ${r.stderr}`);
    };
    await run('ip', ['netns', 'add', ns]);
    const topo = new WorkerNamespace(ns, `${net}.1`, `${net}.5`, links);
    try {
      await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      for (const l of links) {
        await run('ip', ['link', 'add', l.root, 'type', 'veth', 'peer', 'name', l.inside]);
        await run('ip', ['link', 'set', l.inside, 'netns', ns]);
        await run('ip', ['addr', 'add', `${net}.${l.host}/30`, 'dev', l.root]);
        await run('ip', ['link', 'set', l.root, 'up']);
        await run('ip', ['-n', ns, 'addr', 'add', `${net}.${l.host + 1}/30`, 'dev', l.inside]);
        await run('ip', ['-n', ns, 'link', 'set', l.inside, 'up']);
        await run('tc', tbfArgs(l.root, rate));
        await run('tc', ['-n', ns, ...tbfArgs(l.inside, rate)]);
      }
      return topo;
    } catch (e) {
      await topo.close();
      throw e;
    }
  }

  /** A command run inside the namespace. */
  wrap(file: string, args: readonly string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', this.ns, file, ...args]];
  }

  async close(): Promise<void> {
    await execa('ip', ['netns', 'del', this.ns], { reject: false });
    for (const d of this.devs) await execa('ip', ['link', 'del', d.root], { reject: false });
  }
}

/**
 * A delay proxy (bench/delay-proxy.ts) in its own process, so its CPU shows
 * as the machine's and never stalls the bench: listens on `host`, forwards to
 * 127.0.0.1:`toPort`, adds `rttMs` to every round trip.
 */
export class DelayProxy {
  private constructor(
    private readonly child: ChildProcess,
    readonly host: string,
    readonly port: number,
  ) {}

  static start(host: string, toPort: number, rttMs: number): Promise<DelayProxy> {
    const child = spawn(process.execPath, [path.join(__dirname, 'delay-proxy.js'), host, String(toPort), String(rttMs)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    // Never left listening after the bench, however it ends.
    const kill = (): void => void child.kill('SIGTERM');
    process.once('exit', kill);
    child.once('exit', () => process.removeListener('exit', kill));
    return new Promise((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /^listening (\d+)\n/.exec(out);
        if (m) resolve(new DelayProxy(child, host, Number(m[1])));
      });
      child.once('exit', (code) => reject(new Error(`The delay proxy exited (${code}) before listening on ${host}.`)));
    });
  }

  stop(): void {
    this.child.kill('SIGTERM');
  }
}
