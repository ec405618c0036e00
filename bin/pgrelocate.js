#!/usr/bin/env node
'use strict';
// The CLI is compiled by `npm run build` (run by `npm ci` through `prepare`).
let cli;
try {
  cli = require('../dist/scripts/cli.js');
} catch (e) {
  if (e && e.code === 'MODULE_NOT_FOUND') {
    process.stderr.write('pgrelocate is not built yet: run `npm run build` in ' + require('path').resolve(__dirname, '..') + '\n');
    process.exit(1);
  }
  throw e;
}
cli.main(process.argv).then(cli.exitWith);
