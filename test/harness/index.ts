// The test harness: throwaway Redis servers with real TLS, certificates, and a fault proxy.
export {
  CHECK_EXPIRY_SCRIPT,
  GENERATE_CERTS_SCRIPT,
  getSharedCertBundle,
  makeCertBundle,
  makeSelfSignedServerCert,
  makeWrongHostCertBundle,
  removeCertBundle,
  runGenerateCerts,
} from './certs.js';
export type { CertBundle, CertBundleOptions, SelfSignedServerCert } from './certs.js';
export { getFreePort } from './free-port.js';
export { runningRedisCount, startRedis, stopAllRedis } from './redis-server.js';
export type { AclUser, RedisServerOptions, RunningRedis } from './redis-config.js';
export { startTcpProxy } from './tcp-proxy.js';
export type { TcpProxy, TcpProxyOptions } from './tcp-proxy.js';
