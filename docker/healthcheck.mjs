// The image's HEALTHCHECK: probes the endpoint of whichever taskline process runs as PID 1, so
// one image serves every command. Exit 0 = healthy. TASKLINE_HEALTHCHECK_URL overrides the URL.
//   taskline-producer serve              GET /readyz on --port / PORT (8000); HTTPS when
//                                         PRODUCER_API_TLS_CERT is set (anonymous: no token sent)
//   taskline-worker start                GET /readyz on --metrics-port / TASKLINE_METRICS_PORT (9464)
//   taskline-scheduler start             GET /readyz on --metrics-port / TASKLINE_METRICS_PORT (9102)
//   taskline-<bin> scripts load --watch  GET /readyz on --metrics-port (every script on both servers)
// HTTPS is verified by pinning: the certificate the API presents must be the one in
// PRODUCER_API_TLS_CERT (read afresh at each probe, so a rotated certificate is followed), which
// needs no CA and no host name. An API that requires client certificates (PRODUCER_API_TLS_CA)
// gets TASKLINE_HEALTHCHECK_CERT / TASKLINE_HEALTHCHECK_KEY presented, if set.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const TIMEOUT_MS = 4000;
const ENDPOINTS = {
  'taskline-producer': { flag: '--port', env: 'PORT', port: 8000, path: '/readyz', https: Boolean(process.env.PRODUCER_API_TLS_CERT) },
  'taskline-worker': { flag: '--metrics-port', env: 'TASKLINE_METRICS_PORT', port: 9464, path: '/readyz', https: false },
  'taskline-scheduler': { flag: '--metrics-port', env: 'TASKLINE_METRICS_PORT', port: 9102, path: '/readyz', https: false },
};

function urlOfPid1() {
  const argv = readFileSync('/proc/1/cmdline', 'utf8').split('\0').filter(Boolean);
  const bin = argv.map(arg => arg.split('/').pop().replace(/\.js$/, '')).find(name => name in ENDPOINTS);
  if (bin === undefined) return undefined;
  // `scripts load --watch` of any bin serves only the ops endpoints, on --metrics-port.
  const scripts = argv.includes('scripts');
  const { flag, env, port, path, https: secure } = scripts
    ? { flag: '--metrics-port', env: '', port: undefined, path: '/readyz', https: false }
    : ENDPOINTS[bin];
  const at = argv.findIndex(arg => arg === flag || arg.startsWith(`${flag}=`));
  const given = at < 0 ? process.env[env] : argv[at].includes('=') ? argv[at].split('=')[1] : argv[at + 1];
  if (!given && port === undefined) return undefined;
  return `${secure ? 'https' : 'http'}://127.0.0.1:${given || port}${path}`;
}

/** The first certificate of a PEM file (the leaf of a chain). */
function leafOf(file) {
  const pem = readFileSync(file, 'utf8');
  const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  if (!first) throw new Error(`${file} holds no PEM certificate`);
  return new X509Certificate(first[0]);
}

function get(url) {
  const target = new URL(url);
  const secure = target.protocol === 'https:';
  let expected = null;
  const options = { timeout: TIMEOUT_MS, agent: false };
  if (secure) {
    const pinned = process.env.PRODUCER_API_TLS_CERT;
    if (!pinned) throw new Error('an https URL needs PRODUCER_API_TLS_CERT, the certificate the API must present');
    expected = leafOf(pinned).fingerprint256;
    // Verified against the pinned certificate (below) instead of a CA and a host name. Nothing
    // secret is sent: /readyz takes no token.
    Object.assign(options, { minVersion: 'TLSv1.2', rejectUnauthorized: false });
    if (process.env.TASKLINE_HEALTHCHECK_CERT) {
      Object.assign(options, { cert: readFileSync(process.env.TASKLINE_HEALTHCHECK_CERT), key: readFileSync(process.env.TASKLINE_HEALTHCHECK_KEY ?? '') });
    }
  }
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).get(target, options, res => {
      const presented = secure ? res.socket.getPeerCertificate().fingerprint256 : null;
      if (presented !== expected) {
        req.destroy(new Error(`the API presents a certificate other than PRODUCER_API_TLS_CERT (${presented})`));
        return;
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', chunk => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
    req.on('error', reject);
  });
}

const url = process.env.TASKLINE_HEALTHCHECK_URL || urlOfPid1();
if (url === undefined) {
  console.error('healthcheck: PID 1 is no taskline process with an endpoint; set TASKLINE_HEALTHCHECK_URL');
  process.exit(1);
}
try {
  const { status, body } = await get(url);
  const ok = status >= 200 && status < 300;
  if (!ok) console.error(`healthcheck: ${url} answered ${status}: ${body.slice(0, 500)}`);
  process.exit(ok ? 0 : 1);
} catch (err) {
  console.error(`healthcheck: ${url}: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
