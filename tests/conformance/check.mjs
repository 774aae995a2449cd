// Judges one run of the MCP conformance suite against toolgate from the suite's per-check
// results (checks.json), never from its pass count: a check with status FAILURE or WARNING
// fails its scenario, even where the suite's summary counts the scenario as passed.
//
//   node check.mjs --mode sessions|stateless --url http://127.0.0.1:PORT/mcp \
//                  --results DIR --baseline baseline.yaml --suite PATH/dist/index.js --report FILE
//
// Rules:
// - every scenario the suite knows (`list --server`) must have run and written checks.json;
// - a scenario outside the baseline must have at least one SUCCESS check and no FAILURE or
//   WARNING check, except checks listed under `checks:` in the baseline for this mode;
// - a baselined scenario must still fail, and each of its failing checks must match the
//   entry's `expect`; one that passes is stale and must be removed from the baseline;
// - each baseline entry's conditions (requires_capability, requires_tool, requires_session)
//   are verified against the running server, so no entry can hide a failure of something
//   toolgate claims to do.
// Prints the problems found, one per line, writes a per-scenario report to --report, prints a
// one-line summary of this mode last, and exits 1 when there is any problem.

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';

const { values: opt } = parseArgs({
  options: {
    mode: { type: 'string' },
    url: { type: 'string' },
    results: { type: 'string' },
    baseline: { type: 'string' },
    suite: { type: 'string' },
    report: { type: 'string' },
  },
});
for (const k of ['mode', 'url', 'results', 'baseline', 'suite', 'report']) {
  if (!opt[k]) {
    console.error(`check.mjs: --${k} is required`);
    process.exit(2);
  }
}

const problems = [];
const problem = (text) => problems.push(text);

// ---- the baseline, validated ------------------------------------------------------------
const MODES = ['sessions', 'stateless'];
const CONDITIONS = ['requires_capability', 'requires_tool', 'requires_session'];
const KEYS = new Set(['reason', 'expect', 'modes', 'evidence', ...CONDITIONS]);
const baseline = YAML.parse(readFileSync(opt.baseline, 'utf8')) ?? {};
for (const section of Object.keys(baseline)) {
  if (!['scenarios', 'checks'].includes(section)) {
    problem(`baseline: unknown section \`${section}\`; expected scenarios or checks`);
  }
}
function entries(section) {
  const out = new Map();
  for (const [name, e] of Object.entries(baseline[section] ?? {})) {
    const where = `baseline ${section}.${name}`;
    if (!e || typeof e !== 'object') {
      problem(`${where}: expected a mapping with reason, expect and a condition`);
      continue;
    }
    for (const k of Object.keys(e)) {
      if (!KEYS.has(k)) problem(`${where}: unknown key \`${k}\`; expected one of ${[...KEYS].join(', ')}`);
    }
    if (typeof e.reason !== 'string' || e.reason.trim().length < 20) {
      problem(`${where}: needs a \`reason\` saying why it does not apply`);
    }
    if (typeof e.expect !== 'string') {
      problem(`${where}: needs \`expect\`, a regular expression its failures must match`);
    }
    if (!CONDITIONS.some((c) => c in e)) {
      problem(`${where}: needs a condition the script can verify (${CONDITIONS.join(', ')})`);
    }
    const modes = e.modes ?? MODES;
    if (!Array.isArray(modes) || modes.some((m) => !MODES.includes(m))) {
      problem(`${where}: \`modes\` must be a list of ${MODES.join(', ')}`);
      continue;
    }
    if (modes.includes(opt.mode)) out.set(name, e);
  }
  return out;
}
const baselineScenarios = entries('scenarios');
const baselineChecks = entries('checks'); // key: scenario/check-id

// ---- what the server offers --------------------------------------------------------------
async function rpc(body, headers = {}) {
  const res = await fetch(opt.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15000),
  });
  const text = await res.text();
  let message = null;
  if ((res.headers.get('content-type') ?? '').includes('text/event-stream')) {
    for (const line of text.split('\n')) {
      if (!line.startsWith('data:')) continue;
      try {
        const m = JSON.parse(line.slice(5));
        if (m && m.id === body.id) message = m;
      } catch {
        // priming events carry no JSON
      }
    }
  } else if (text) {
    message = JSON.parse(text);
  }
  return { status: res.status, session: res.headers.get('mcp-session-id'), message };
}

async function probe() {
  const init = await rpc({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 'toolgate-conformance-check', version: '1' },
    },
  });
  if (init.status !== 200 || !init.message?.result) {
    throw new Error(`initialize answered HTTP ${init.status}: ${JSON.stringify(init.message)}`);
  }
  const version = init.message.result.protocolVersion;
  const headers = { 'mcp-protocol-version': version };
  if (init.session) headers['mcp-session-id'] = init.session;
  if (init.session) {
    await rpc({ jsonrpc: '2.0', method: 'notifications/initialized' }, headers);
  }
  const tools = [];
  let cursor;
  for (let page = 0; page < 50; page++) {
    const list = await rpc(
      { jsonrpc: '2.0', id: 2 + page, method: 'tools/list', params: cursor ? { cursor } : {} },
      headers,
    );
    if (!list.message?.result) throw new Error(`tools/list failed: ${JSON.stringify(list.message)}`);
    tools.push(...list.message.result.tools.map((t) => t.name));
    cursor = list.message.result.nextCursor;
    if (!cursor) break;
  }
  if (init.session) {
    await fetch(opt.url, { method: 'DELETE', headers, signal: AbortSignal.timeout(5000) }).catch(() => {});
  }
  return { capabilities: init.message.result.capabilities ?? {}, tools, session: init.session };
}

let server;
try {
  server = await probe();
} catch (e) {
  console.log(`conformance (${opt.mode}): cannot ask the server what it offers: ${e.message}`);
  process.exit(1);
}

function conditionProblems(where, e) {
  const out = [];
  if ('requires_capability' in e && e.requires_capability in server.capabilities) {
    out.push(`${where}: toolgate now declares the \`${e.requires_capability}\` capability, so this scenario applies: remove the entry and make it pass`);
  }
  if ('requires_tool' in e && server.tools.includes(e.requires_tool)) {
    out.push(`${where}: toolgate now lists the tool \`${e.requires_tool}\`, so this scenario applies: remove the entry and make it pass`);
  }
  if ('requires_session' in e && server.session) {
    out.push(`${where}: toolgate gave a session id in this mode, so this scenario applies: remove the entry and make it pass`);
  }
  return out;
}

// ---- the suite's results -----------------------------------------------------------------
const listing = execFileSync(process.execPath, [opt.suite, 'list', '--server'], {
  encoding: 'utf8',
  timeout: 60000,
});
const known = [...listing.matchAll(/^\s*-\s+([a-z0-9-]+)/gm)].map((m) => m[1]);
if (known.length === 0) problem('the suite listed no server scenarios');

const dirs = new Map();
for (const d of existsSync(opt.results) ? readdirSync(opt.results) : []) {
  const m = d.match(/^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/);
  if (m) dirs.set(m[1], join(opt.results, d));
}
for (const name of baselineScenarios.keys()) {
  if (!known.includes(name)) problem(`baseline scenarios.${name}: the suite has no such scenario; remove the entry`);
}
for (const key of baselineChecks.keys()) {
  if (!known.includes(key.split('/')[0])) problem(`baseline checks.${key}: the suite has no such scenario; remove the entry`);
}

const bad = (c) => c.status === 'FAILURE' || c.status === 'WARNING';
const describe = (c) => `${c.id} ${c.status}: ${c.errorMessage ?? JSON.stringify(c.details ?? {}).slice(0, 300)}`;
const report = [];
let passed = 0;
let notApplicable = 0;

for (const name of known) {
  const dir = dirs.get(name);
  const file = dir && join(dir, 'checks.json');
  if (!file || !existsSync(file)) {
    problem(`${name}: the suite wrote no checks.json (did it crash or time out?)`);
    report.push(`${name}: NO RESULT`);
    continue;
  }
  let checks;
  try {
    checks = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    problem(`${name}: checks.json is not JSON: ${e.message}`);
    continue;
  }
  const raw = JSON.stringify(checks);
  const entry = baselineScenarios.get(name);
  if (entry) {
    const where = `baseline scenarios.${name}`;
    conditionProblems(where, entry).forEach(problem);
    const failing = checks.filter(bad);
    if (failing.length === 0) {
      problem(`${name}: passes now, but the baseline says it does not apply: remove it from the baseline (stale entry)`);
      report.push(`${name}: PASS (stale baseline entry)`);
      continue;
    }
    const re = new RegExp(entry.expect);
    for (const c of failing) {
      const text = `${c.errorMessage ?? ''} ${JSON.stringify(c.details ?? {})}`;
      if (!re.test(text)) problem(`${name}: fails for a reason the baseline does not give: ${describe(c)}`);
    }
    if (entry.evidence && !new RegExp(entry.evidence).test(raw)) {
      problem(`${name}: the baseline's evidence /${entry.evidence}/ is not in its results`);
    }
    notApplicable++;
    report.push(`${name}: not applicable: ${entry.reason}`);
    continue;
  }
  const excused = [];
  let failed = false;
  for (const c of checks.filter(bad)) {
    const key = `${name}/${c.id}`;
    const ce = baselineChecks.get(key);
    if (!ce) {
      problem(`${name}: ${describe(c)}`);
      failed = true;
      continue;
    }
    conditionProblems(`baseline checks.${key}`, ce).forEach(problem);
    const text = `${c.errorMessage ?? ''} ${JSON.stringify(c.details ?? {})}`;
    if (!new RegExp(ce.expect).test(text)) {
      problem(`${name}: fails for a reason the baseline does not give: ${describe(c)}`);
      failed = true;
    }
    if (ce.evidence && !new RegExp(ce.evidence).test(raw)) {
      problem(`${name}: the baseline's evidence /${ce.evidence}/ for ${c.id} is not in its results`);
      failed = true;
    }
    excused.push(c.id);
  }
  for (const key of baselineChecks.keys()) {
    const [scenario, id] = [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)];
    if (scenario === name && !excused.includes(id)) {
      const c = checks.find((x) => x.id === id);
      problem(`baseline checks.${key}: ${c ? `now ${c.status}` : 'no longer reported'}: remove the entry (stale)`);
    }
  }
  if (!checks.some((c) => c.status === 'SUCCESS')) {
    problem(`${name}: no check succeeded (${checks.map((c) => `${c.id} ${c.status}`).join(', ') || 'no checks'})`);
    failed = true;
  }
  if (failed) {
    report.push(`${name}: FAIL`);
  } else {
    passed++;
    const ok = checks.filter((c) => c.status === 'SUCCESS').map((c) => c.id);
    report.push(`${name}: PASS (${ok.join(', ')}${excused.length ? `; not applicable: ${excused.join(', ')}` : ''})`);
  }
}

writeFileSync(opt.report, `${report.join('\n')}\n`);
for (const p of problems) console.log(`  ${opt.mode}: ${p}`);
console.log(
  `${opt.mode}: ${passed} scenarios pass, ${notApplicable} not applicable (baseline)` +
    (problems.length ? `, ${problems.length} problem${problems.length === 1 ? '' : 's'}` : ''),
);
process.exit(problems.length ? 1 : 0);
