// deploy/60-probefarm.rules: every line is a well-formed udev rule (udev(7) syntax; Debian
// 12's udevadm has no `verify`, which came in systemd 254), the ST-Link PIDs are exactly the
// ones probe/discovery.cpp drives, CMSIS-DAP probes are matched by name as discovery does,
// and the group the rules hand the probes to is one the service user is in.
// Usage: node check_udev_rules.mjs RULES DISCOVERY_CPP SYSUSERS UNIT
import { readFileSync } from 'node:fs';

const [rulesFile, discoveryFile, sysusersFile, unitFile] = process.argv.slice(2);
const problems = [];
const fail = (msg) => problems.push(msg);

// udev(7) "Rules files": match keys take == or !=, assignment keys =, +=, -= or :=.
const matchKeys = new Set(['ACTION', 'DEVPATH', 'KERNEL', 'KERNELS', 'NAME', 'SYMLINK',
  'SUBSYSTEM', 'SUBSYSTEMS', 'DRIVER', 'DRIVERS', 'ATTR', 'ATTRS', 'SYSCTL', 'ENV', 'CONST',
  'TAG', 'TAGS', 'TEST', 'PROGRAM', 'RESULT']);
const assignKeys = new Set(['NAME', 'SYMLINK', 'OWNER', 'GROUP', 'MODE', 'SECLABEL', 'ATTR',
  'SYSCTL', 'ENV', 'TAG', 'RUN', 'LABEL', 'GOTO', 'IMPORT', 'OPTIONS']);
const withAttribute = new Set(['ATTR', 'ATTRS', 'SYSCTL', 'ENV', 'CONST', 'TEST', 'SECLABEL',
  'RUN', 'IMPORT']);
const token = /^\s*([A-Z]+)(?:\{([^}]*)\})?\s*(==|!=|\+=|-=|:=|=)\s*"((?:[^"\\]|\\.)*)"\s*/;

const rules = [];  // [{line, pairs: [{key, attr, op, value}]}]
readFileSync(rulesFile, 'utf8').split('\n').forEach((text, i) => {
  const line = i + 1;
  if (/^\s*(#.*)?$/.test(text)) return;
  let rest = text;
  const pairs = [];
  for (;;) {
    const m = token.exec(rest);
    if (!m) { fail(`${rulesFile}:${line}: cannot parse '${rest.trim()}'`); return; }
    const [, key, attr, op, value] = m;
    const isMatch = op === '==' || op === '!=';
    if (!(isMatch ? matchKeys : assignKeys).has(key))
      fail(`${rulesFile}:${line}: ${key} cannot be used with ${op}`);
    if (withAttribute.has(key) !== (attr !== undefined) && !(key === 'IMPORT' || key === 'RUN'))
      fail(`${rulesFile}:${line}: ${key} ${attr === undefined ? 'needs' : 'takes no'} {attribute}`);
    pairs.push({ key, attr, op, value });
    rest = rest.slice(m[0].length);
    if (rest.trim() === '') break;
    if (rest[0] !== ',') { fail(`${rulesFile}:${line}: expected ',' before '${rest.trim()}'`); return; }
    rest = rest.slice(1);
  }
  rules.push({ line, pairs });
});

const find = (rule, key, attr) => rule.pairs.find((p) => p.key === key && p.attr === attr);
const labels = new Set(rules.flatMap((r) => r.pairs.filter((p) => p.key === 'LABEL').map((p) => p.value)));
for (const r of rules) {
  const gotoPair = find(r, 'GOTO');
  if (gotoPair && !labels.has(gotoPair.value))
    fail(`${rulesFile}:${r.line}: GOTO "${gotoPair.value}" has no LABEL`);
  const mode = find(r, 'MODE');
  if (mode && !/^0?[0-7]{3}$/.test(mode.value)) fail(`${rulesFile}:${r.line}: MODE "${mode.value}" is not octal`);
  if (mode && /[1-7]$/.test(mode.value)) fail(`${rulesFile}:${r.line}: MODE "${mode.value}" opens the probe to every user`);
}
const accessRules = rules.filter((r) => find(r, 'MODE'));

// Group: the one the service user joins (sysusers "m probefarm GROUP", unit SupplementaryGroups=).
const member = readFileSync(sysusersFile, 'utf8').match(/^m\s+probefarm\s+(\S+)/m);
const supplementary = readFileSync(unitFile, 'utf8').match(/^SupplementaryGroups=(.*)$/m);
if (!member) fail(`${sysusersFile}: no 'm probefarm GROUP' line`);
for (const r of accessRules) {
  const group = find(r, 'GROUP');
  if (!group) { fail(`${rulesFile}:${r.line}: MODE without GROUP`); continue; }
  if (member && group.value !== member[1])
    fail(`${rulesFile}:${r.line}: GROUP "${group.value}" is not the group probefarm joins ("${member[1]}")`);
  if (!supplementary || !supplementary[1].split(/\s+/).includes(group.value))
    fail(`${unitFile}: SupplementaryGroups= does not name "${group.value}"`);
}

// ST-Link: the PIDs discovery.cpp gives a ProbeKind (nullopt ones are known but not driven).
const discovery = readFileSync(discoveryFile, 'utf8');
const vid = discovery.match(/kStVid\s*=\s*0x([0-9A-Fa-f]{4})/)[1].toLowerCase();
const driven = [...discovery.matchAll(/\{0x([0-9A-Fa-f]{4}),\s*ProbeKind::/g)].map((m) => m[1].toLowerCase()).sort();
if (driven.length === 0) fail(`${discoveryFile}: found no ST-Link PIDs (did the table change shape?)`);
const stRules = accessRules.filter((r) => find(r, 'ATTRS', 'idVendor')?.value === vid);
const inRules = stRules.flatMap((r) => (find(r, 'ATTRS', 'idProduct')?.value ?? '').split('|')).map((p) => p.toLowerCase()).sort();
if (JSON.stringify(inRules) !== JSON.stringify(driven))
  fail(`ST-Link PIDs differ: rules ${inRules.join(',')} vs discovery.cpp ${driven.join(',')}`);

// CMSIS-DAP: discovery.cpp recognises the probe by the "CMSIS-DAP" in its strings.
if (!discovery.includes('"CMSIS-DAP"')) fail(`${discoveryFile}: no longer matches "CMSIS-DAP" by name`);
if (!accessRules.some((r) => find(r, 'ATTRS', 'product')?.value === '*CMSIS-DAP*'))
  fail(`${rulesFile}: no rule matching ATTRS{product}=="*CMSIS-DAP*"`);

if (problems.length) {
  for (const p of problems) console.log(`FAIL: ${p}`);
  process.exit(1);
}
console.log(`ok: ${rules.length} rules; ST-Link ${vid}:${driven.join(',')}; CMSIS-DAP by product string`);
