import type { NetStream } from 'ioredis/built/types.js';
import type { ErrorEmitter } from 'ioredis/built/connectors/AbstractConnector.js';
import type { RedisOptions } from 'ioredis';
import connectors from 'ioredis/built/connectors/index.js';

const { StandaloneConnector } = connectors;

/**
 * ioredis listens for a socket's errors with `once`: a second error on the same socket (a TLS
 * alert read after a failed handshake, a reset after a close) would be an uncaught exception
 * that kills the process. This connector gives every socket a permanent error sink; the first
 * error still reaches ioredis, which handles it as before.
 */
class SafeStandaloneConnector extends StandaloneConnector {
  override async connect(emitter: ErrorEmitter): Promise<NetStream> {
    const stream = await super.connect(emitter);
    stream.on('error', ignoreLaterErrors);
    return stream;
  }
}

function ignoreLaterErrors(): void {
  // the first error is ioredis' to handle; later ones on a dying socket carry no news
}

/** As ioredis' `Connector` option (it passes the client's options, a superset of the connector's). */
export const SafeConnector = SafeStandaloneConnector as unknown as NonNullable<RedisOptions['Connector']>;
