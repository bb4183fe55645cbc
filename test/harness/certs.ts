import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of certs/generate-certs.sh. */
export const GENERATE_CERTS_SCRIPT = fileURLToPath(
  new URL('../../certs/generate-certs.sh', import.meta.url),
);
/** Absolute path of certs/check-expiry.sh. */
export const CHECK_EXPIRY_SCRIPT = fileURLToPath(
  new URL('../../certs/check-expiry.sh', import.meta.url),
);

export interface CertBundle {
  /** Directory the server and client files were written to. */
  dir: string;
  /** CA certificate that signed the server and client certificates. */
  caFile: string;
  /** CA private key (the caller's file when `ca` was passed in), in `dir/ca-private/` as generate-certs.sh keeps it. */
  caKeyFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
}

export interface CertBundleOptions {
  /** Output directory. @defaultValue a fresh directory under os.tmpdir(), removed at process exit */
  dir?: string;
  /** @defaultValue 'rsa' (2048-bit) */
  keyType?: 'rsa' | 'ec';
  /** @defaultValue 365 */
  days?: number;
  /** Make the server certificate already expired. @defaultValue false */
  expired?: boolean;
  /** @defaultValue 'localhost' */
  serverCn?: string;
  /** @defaultValue 'taskline-client' */
  clientCn?: string;
  /**
   * Server certificate SANs (`DNS:name` / `IP:addr`). When given they REPLACE the default list
   * (localhost, 127.0.0.1, ::1 and the compose service names).
   */
  sans?: string[];
  /** Sign with this existing CA instead of making a new one (rotation tests). */
  ca?: { certFile: string; keyFile: string };
  /** File name prefix (`NAME-server.crt`...), to issue new files beside old ones in `dir`. */
  prefix?: string;
}

export interface SelfSignedServerCert {
  dir: string;
  certFile: string;
  keyFile: string;
}

const SCRIPT_TIMEOUT_MS = 30_000;

// Temp directories this module created; removed synchronously when the process exits.
const tempDirs = new Set<string>();
let exitHookInstalled = false;

function removeTempDirsSync(): void {
  for (const dir of tempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort at exit
    }
  }
  tempDirs.clear();
}

async function makeTempDir(): Promise<string> {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', removeTempDirsSync);
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'taskline-certs-'));
  tempDirs.add(dir);
  return dir;
}

/** Runs generate-certs.sh with `args`; rejects with its stderr when it fails. */
export async function runGenerateCerts(args: readonly string[]): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    execFile(
      'bash',
      [GENERATE_CERTS_SCRIPT, ...args],
      { timeout: SCRIPT_TIMEOUT_MS, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`generate-certs.sh ${args.join(' ')} failed: ${stderr.trim() || error.message}`, { cause: error }));
        } else {
          resolve(stdout);
        }
      },
    );
  });
}

/**
 * Makes a CA (unless `ca` is given), a server and a client certificate with generate-certs.sh.
 * Every call makes new files; use getSharedCertBundle() for one bundle reused per process.
 */
export async function makeCertBundle(opts: CertBundleOptions = {}): Promise<CertBundle> {
  const dir = opts.dir ?? (await makeTempDir());
  const args = ['--out', dir, '--key-type', opts.keyType ?? 'rsa', '--days', String(opts.days ?? 365)];
  if (opts.expired === true) args.push('--expired');
  if (opts.serverCn !== undefined) args.push('--server-cn', opts.serverCn);
  if (opts.clientCn !== undefined) args.push('--client-cn', opts.clientCn);
  if (opts.sans !== undefined) {
    args.push('--no-default-sans');
    for (const san of opts.sans) args.push('--san', san);
  }
  if (opts.ca !== undefined) args.push('--ca-cert', opts.ca.certFile, '--ca-key', opts.ca.keyFile);
  if (opts.prefix !== undefined) args.push('--prefix', opts.prefix);
  await runGenerateCerts(args);

  const named = (name: string): string => (opts.prefix === undefined ? name : `${opts.prefix}-${name}`);
  const file = (name: string): string => path.join(dir, named(name));
  return {
    dir,
    caFile: opts.ca?.certFile ?? file('ca.crt'),
    caKeyFile: opts.ca?.keyFile ?? path.join(dir, 'ca-private', named('ca.key')),
    serverCertFile: file('server.crt'),
    serverKeyFile: file('server.key'),
    clientCertFile: file('client.crt'),
    clientKeyFile: file('client.key'),
  };
}

/**
 * A bundle whose server certificate names only `other.example`, so a client connecting to
 * localhost / 127.0.0.1 fails hostname verification (ERR_TLS_CERT_ALTNAME_INVALID).
 */
export async function makeWrongHostCertBundle(
  opts: Omit<CertBundleOptions, 'sans' | 'serverCn'> = {},
): Promise<CertBundle> {
  return makeCertBundle({ ...opts, serverCn: 'other.example', sans: ['DNS:other.example'] });
}

/** A server certificate signed by its own key (no CA), SANs localhost and 127.0.0.1. */
export async function makeSelfSignedServerCert(dir?: string): Promise<SelfSignedServerCert> {
  const out = dir ?? (await makeTempDir());
  await runGenerateCerts([
    '--out', out, '--self-signed', '--no-default-sans',
    '--san', 'DNS:localhost', '--san', 'IP:127.0.0.1',
  ]);
  return { dir: out, certFile: path.join(out, 'server.crt'), keyFile: path.join(out, 'server.key') };
}

let shared: Promise<CertBundle> | undefined;

/** One default bundle per process (made on first use), for suites that only need "valid TLS". */
export function getSharedCertBundle(): Promise<CertBundle> {
  if (shared === undefined) {
    shared = makeCertBundle();
    // A failed attempt must not be cached.
    shared.catch(() => {
      shared = undefined;
    });
  }
  return shared;
}

/** Removes a bundle's directory now (it is removed at process exit anyway if the harness made it). */
export async function removeCertBundle(bundle: Pick<CertBundle, 'dir'>): Promise<void> {
  tempDirs.delete(bundle.dir);
  await rm(bundle.dir, { recursive: true, force: true });
}
