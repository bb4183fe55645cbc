import net from 'node:net';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago. The OS picks it (listen on port 0), so
 * there is a small window in which another process could take it; callers that bind it
 * (such as startRedis) retry with a new port when binding fails.
 */
export async function getFreePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not read the port of a probe listener'));
        return;
      }
      const { port } = address;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}
