import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type ConnectionOptions as NodeTlsOptions, type SecureContext } from 'node:tls';
import { ConfigError, type ServiceName } from '../errors.js';
import { envPrefix } from './error-mapping.js';
import type { ResolvedTlsOptions } from './config.js';

interface FileStamp {
  mtimeMs: number;
  size: number;
}

function stamp(file: string): FileStamp {
  const s = statSync(file);
  return { mtimeMs: s.mtimeMs, size: s.size };
}

function readPem(variable: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(
      'CONFIG_FILE_UNREADABLE',
      variable,
      `${variable} names "${file}" that cannot be read now (${(err as NodeJS.ErrnoException).code ?? 'error'}); restore the file or fix its permissions.`,
      { cause: err },
    );
  }
}

/** Expiry of a local certificate file, for metrics and `health`. */
export interface LocalCertificateInfo {
  kind: 'ca' | 'client';
  file: string;
  validTo: Date;
}

/**
 * Builds the TLS options of one service and keeps them current: the CA, certificate and key
 * files are re-read when they change on disk, so every new connection (and every reconnect)
 * uses the files as they are now. Connections already open keep their session.
 */
export class TlsContextProvider {
  readonly service: ServiceName;
  readonly settings: ResolvedTlsOptions;
  #context: SecureContext | null = null;
  #stamps = '';
  #local: LocalCertificateInfo[] = [];

  constructor(service: ServiceName, settings: ResolvedTlsOptions) {
    this.service = service;
    this.settings = settings;
    this.current(); // fail at start-up, not at the first connect, if a file is bad
  }

  /** The secure context for a connection made now. */
  current(): SecureContext {
    const files = [this.settings.caFile, this.settings.certFile, this.settings.keyFile];
    let stamps: string;
    try {
      stamps = JSON.stringify(files.map(f => (f ? stamp(f) : null)));
    } catch {
      stamps = 'unreadable';
    }
    if (this.#context && stamps === this.#stamps) return this.#context;
    this.#context = this.#build();
    this.#stamps = stamps;
    return this.#context;
  }

  #build(): SecureContext {
    const env = envPrefix(this.service);
    const { caFile, certFile, keyFile, minVersion, maxVersion, ciphers } = this.settings;
    const local: LocalCertificateInfo[] = [];
    const ca = caFile ? readPem(`${env}CA_CERT`, caFile) : undefined;
    if (ca && caFile) {
      for (const pem of splitPem(ca)) local.push({ kind: 'ca', file: caFile, validTo: new Date(new X509Certificate(pem).validTo) });
    }
    const cert = certFile ? readPem(`${env}CLIENT_CERT`, certFile) : undefined;
    if (cert && certFile) local.push({ kind: 'client', file: certFile, validTo: new Date(new X509Certificate(cert).validTo) });
    const key = keyFile ? readPem(`${env}CLIENT_KEY`, keyFile) : undefined;
    try {
      const context = createSecureContext({
        ...(ca ? { ca } : {}),
        ...(cert ? { cert } : {}),
        ...(key ? { key } : {}),
        minVersion,
        maxVersion,
        ciphers,
      });
      this.#local = local;
      return context;
    } catch (err) {
      const variable = /key/i.test((err as Error).message) ? `${env}CLIENT_KEY` : `${env}TLS_CIPHERS`;
      throw new ConfigError(
        'CONFIG_TLS_MATERIAL',
        variable,
        `The TLS settings of the ${this.service === 'broker' ? 'broker' : 'result backend'} are unusable (${(err as Error).message}); check ${env}CA_CERT, ${env}CLIENT_CERT, ${env}CLIENT_KEY and REDIS_TLS_CIPHERS.`,
        { cause: err },
      );
    }
  }

  /** Expiry dates of the CA and client certificate files, as last loaded. */
  localCertificates(): LocalCertificateInfo[] {
    return this.#local;
  }

  /**
   * Options for ioredis' `tls`: its connector copies them with Object.assign at every
   * (re)connect, so the getter hands each attempt the context built from the current files.
   */
  ioredisOptions(): NodeTlsOptions {
    const options: NodeTlsOptions = {
      // SNI may not carry an IP (RFC 6066); Node then verifies the IP against the certificate's IP SANs.
      ...(isIP(this.settings.servername) ? {} : { servername: this.settings.servername }),
      rejectUnauthorized: true,
      minVersion: this.settings.minVersion,
      maxVersion: this.settings.maxVersion,
    };
    Object.defineProperty(options, 'secureContext', { enumerable: true, get: () => this.current() });
    return options;
  }
}

function splitPem(buffer: Buffer): string[] {
  return buffer.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}
