// The image's HEALTHCHECK: probes the endpoint of whichever taskline process runs as PID 1, so
// one image serves the three commands. Exit 0 = healthy. TASKLINE_HEALTHCHECK_URL overrides.
//   taskline-producer serve    GET /api/v1/health on --port / PORT (8000)
//   taskline-worker start      GET /readyz on --metrics-port / TASKLINE_METRICS_PORT (9464)
//   taskline-scheduler start   GET /readyz on --metrics-port / TASKLINE_METRICS_PORT (9102)
import { readFileSync } from 'node:fs';

const ENDPOINTS = {
  'taskline-producer': { flag: '--port', env: 'PORT', port: 8000, path: '/api/v1/health' },
  'taskline-worker': { flag: '--metrics-port', env: 'TASKLINE_METRICS_PORT', port: 9464, path: '/readyz' },
  'taskline-scheduler': { flag: '--metrics-port', env: 'TASKLINE_METRICS_PORT', port: 9102, path: '/readyz' },
};

function urlOfPid1() {
  const argv = readFileSync('/proc/1/cmdline', 'utf8').split('\0').filter(Boolean);
  const bin = argv.map(arg => arg.split('/').pop().replace(/\.js$/, '')).find(name => name in ENDPOINTS);
  if (bin === undefined) return undefined;
  const { flag, env, port, path } = ENDPOINTS[bin];
  const at = argv.findIndex(arg => arg === flag || arg.startsWith(`${flag}=`));
  const given = at < 0 ? process.env[env] : argv[at].includes('=') ? argv[at].split('=')[1] : argv[at + 1];
  return `http://127.0.0.1:${given || port}${path}`;
}

const url = process.env.TASKLINE_HEALTHCHECK_URL || urlOfPid1();
if (url === undefined) {
  console.error('healthcheck: PID 1 is no taskline process; set TASKLINE_HEALTHCHECK_URL');
  process.exit(1);
}
try {
  const res = await fetch(url, { signal: globalThis.AbortSignal.timeout(4000) });
  const body = await res.text();
  if (!res.ok) console.error(`healthcheck: ${url} answered ${res.status}: ${body.slice(0, 500)}`);
  process.exit(res.ok ? 0 : 1);
} catch (err) {
  console.error(`healthcheck: ${url}: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
