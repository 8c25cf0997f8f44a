// Lints an OpenAPI document with the pinned @redocly/cli (package.json) and the recommended
// rules (redocly.yaml). Redocly exits 0 when only warnings remain; here a warning fails too,
// unless .redocly.lint-ignore.yaml lists it.
// Usage: node lint_openapi.mjs OPENAPI_YAML   (run from this directory)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const redocly = path.join(here, 'node_modules', '.bin', 'redocly');
if (!existsSync(redocly)) {
  console.log(`FAIL: ${redocly} is missing: run  npm ci --prefix ${here}  (scripts/setup does)`);
  process.exit(1);
}
const api = process.argv[2];
const run = (format) => spawnSync(redocly, ['lint', '--config', path.join(here, 'redocly.yaml'),
  `--format=${format}`, api], { cwd: here, encoding: 'utf8', timeout: 120000 });

const json = run('json');
let totals;
try {
  totals = JSON.parse(json.stdout).totals;
} catch {
  console.log(json.stdout, json.stderr);
  console.log(`FAIL: redocly lint gave no JSON report (exit status ${json.status})`);
  process.exit(1);
}
if (totals.errors > 0 || totals.warnings > 0) {
  const stylish = run('stylish');
  console.log(stylish.stdout, stylish.stderr);
  console.log(`FAIL: ${api}: ${totals.errors} errors, ${totals.warnings} warnings`);
  process.exit(1);
}
console.log(`ok: ${api} passes redocly lint (recommended; ${totals.ignored} ignored, see .redocly.lint-ignore.yaml)`);
