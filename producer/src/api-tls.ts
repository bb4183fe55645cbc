import { readFileSync, statSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { ConfigError, DEFAULT_TLS_CIPHERS, type Logger } from '@taskline/shared';
import type { ResolvedApiTls } from './api-options.js';

/** How often, at most, the files are stat()ed for changes (on new connections). */
const CHECK_EVERY_MS = 1000;

/**
 * The HTTPS API's certificate, key and client CA, kept current like the Redis connections' TLS
 * files (shared/src/connection/tls-context.ts): when a file changes on disk, new connections get a context
 * built from the new files, so certificates rotate without a restart. A half-written or
 * mismatched set is not loaded: the previous context stays, with a warning.
 */
export class ApiTlsFiles {
  readonly settings: ResolvedApiTls;
  #stamps: string;
  #checkedAt = 0;
  #failing = false;

  constructor(settings: ResolvedApiTls) {
    this.settings = settings;
    this.#stamps = this.#stat();
    try {
      createSecureContext(this.contextOptions());
    } catch (err) {
      throw new ConfigError(
        'CONFIG_API_TLS',
        'PRODUCER_API_TLS_KEY',
        `The producer API's TLS files are unusable (${(err as Error).message}); check that PRODUCER_API_TLS_CERT and PRODUCER_API_TLS_KEY are a matching PEM certificate and key (and PRODUCER_API_TLS_CA a PEM CA).`,
        { cause: err },
      );
    }
  }

  #stat(): string {
    const files = [this.settings.certFile, this.settings.keyFile, this.settings.caFile];
    try {
      return JSON.stringify(files.map(f => (f ? statSync(f) : null)).map(s => (s ? [s.mtimeMs, s.size] : null)));
    } catch {
      return 'unreadable';
    }
  }

  /** The TLS settings of the server: TLS 1.2–1.3, the strong cipher list, client certificates when a CA is set. */
  contextOptions(): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
    const { certFile, keyFile, caFile } = this.settings;
    return {
      cert: readFileSync(certFile),
      key: readFileSync(keyFile),
      ...(caFile ? { ca: readFileSync(caFile) } : {}),
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.3',
      ciphers: DEFAULT_TLS_CIPHERS,
      honorCipherOrder: true,
      requestCert: caFile !== null,
      rejectUnauthorized: caFile !== null,
    };
  }

  /** Called for each new connection, before its handshake: swaps the context in if the files changed. */
  refresh(server: HttpsServer, logger: Logger): void {
    const now = Date.now();
    if (now - this.#checkedAt < CHECK_EVERY_MS) return;
    this.#checkedAt = now;
    const stamps = this.#stat();
    if (stamps === this.#stamps) return;
    try {
      server.setSecureContext(this.contextOptions());
      this.#stamps = stamps;
      this.#failing = false;
      logger.info('Producer API TLS files reloaded', { cert: this.settings.certFile });
    } catch (err) {
      // Retried at the next check: a rotation may be half-way through replacing the pair.
      if (!this.#failing) logger.warn('The producer API TLS files changed but cannot be loaded; still serving the previous certificate', { error: err });
      this.#failing = true;
    }
  }
}
