import net from 'node:net';

/**
 * An in-process TCP proxy on 127.0.0.1 for fault tests. Bytes pass through untouched (TLS
 * included), so TLS clients must set `servername` to a name in the server certificate.
 */
export interface TcpProxy {
  readonly port: number;
  /** Destroys every current connection (both sides), as a network drop would. */
  cutAll(): void;
  /** While true, new connections are accepted and immediately destroyed. */
  setDropNew(drop: boolean): void;
  /** Delays data forwarded in both directions by `ms` (order is kept). 0 turns it off. */
  setDelayMs(ms: number): void;
  /** Connections currently open through the proxy. */
  connectionCount(): number;
  /** Stops listening and destroys every connection. Safe to call twice. */
  close(): Promise<void>;
}

export interface TcpProxyOptions {
  targetPort: number;
  /** @defaultValue '127.0.0.1' */
  targetHost?: string;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
}

export async function startTcpProxy(opts: TcpProxyOptions): Promise<TcpProxy> {
  const targetHost = opts.targetHost ?? '127.0.0.1';
  const pairs = new Set<Pair>();
  let dropNew = false;
  let delayMs = 0;

  // Forwards from → to; with a delay, each chunk is due no earlier than the previous one.
  const forward = (from: net.Socket, to: net.Socket): void => {
    let lastDue = 0;
    from.on('data', (chunk: Buffer) => {
      if (delayMs <= 0 && lastDue <= Date.now()) {
        if (!to.write(chunk)) {
          from.pause();
          to.once('drain', () => from.resume());
        }
        return;
      }
      const due = Math.max(Date.now() + delayMs, lastDue);
      lastDue = due;
      setTimeout(() => {
        if (!to.destroyed) to.write(chunk);
      }, due - Date.now());
    });
    from.on('end', () => {
      const endAt = Math.max(lastDue - Date.now(), 0);
      setTimeout(() => to.end(), endAt);
    });
  };

  const server = net.createServer((client) => {
    if (dropNew) {
      client.destroy();
      return;
    }
    const upstream = net.connect({ host: targetHost, port: opts.targetPort });
    const pair: Pair = { client, upstream };
    pairs.add(pair);
    const teardown = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', teardown);
    upstream.on('error', teardown);
    client.on('close', teardown);
    upstream.on('close', teardown);
    forward(client, upstream);
    forward(upstream, client);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('tcp proxy: no listening address');

  const cutAll = (): void => {
    for (const pair of [...pairs]) {
      pairs.delete(pair);
      pair.client.destroy();
      pair.upstream.destroy();
    }
  };
  let closing: Promise<void> | undefined;

  return {
    port: address.port,
    cutAll,
    setDropNew: (drop) => {
      dropNew = drop;
    },
    setDelayMs: (ms) => {
      if (!(Number.isFinite(ms) && ms >= 0)) throw new Error(`setDelayMs: need ms >= 0, got ${ms}`);
      delayMs = ms;
    },
    connectionCount: () => pairs.size,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        cutAll();
      });
      return closing;
    },
  };
}
