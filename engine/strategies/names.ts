/** The strategies' names, with no imports, so that any module (and the Pulumi components) may use them. */
export type Strategy = 'dump-restore' | 'logical' | 'pglogical' | 'bucardo';
export const STRATEGIES: readonly Strategy[] = ['dump-restore', 'logical', 'pglogical', 'bucardo'];

/** The strategies that copy, then stream changes until a cutover. */
export type StreamingStrategy = Exclude<Strategy, 'dump-restore'>;
export const STREAMING_STRATEGIES: readonly StreamingStrategy[] = ['logical', 'pglogical', 'bucardo'];

export function isStreaming(s: string): s is StreamingStrategy {
  return (STREAMING_STRATEGIES as readonly string[]).includes(s);
}

/** The default branch of an exhaustive switch: a new strategy that is not handled fails to compile. */
export function unhandled(x: never): never {
  throw new Error(`unhandled strategy ${String(x)}`);
}
