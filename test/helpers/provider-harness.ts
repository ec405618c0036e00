/**
 * Loads a serialized dynamic provider the way Pulumi's provider host does
 * (`require-from-string(text).handler()`, no file name, so `require` resolves
 * from the working directory: the project's, as Pulumi runs the host there),
 * in a fresh process, and runs one of its methods:
 * `node provider-harness.js PROVIDER_FILE METHOD ARGS_JSON_FILE`.
 * Prints the method's result as JSON on stdout.
 */
import { readFileSync } from 'node:fs';

async function main(): Promise<void> {
  const [file, method, argsFile] = process.argv.slice(2);
  const requireFromString = require('require-from-string') as (
    code: string,
    filename?: string,
  ) => { handler: () => Record<string, (...a: unknown[]) => Promise<unknown>> };
  const provider = requireFromString(readFileSync(file!, 'utf8')).handler();
  const args = JSON.parse(readFileSync(argsFile!, 'utf8')) as unknown[];
  const fn = provider[method!];
  if (!fn) throw new Error(`the provider has no ${method}`);
  const result = await fn(...args);
  process.stdout.write(JSON.stringify(result ?? null) + '\n');
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack ?? e.message}\n`);
  process.exit(1);
});
