import type { IncomingMessage } from 'node:http';

/** Why a request body could not be read. */
export class BodyError extends Error {
  constructor(
    readonly status: 400 | 413,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Reads a JSON body of at most `limit` bytes. Over the limit it stops reading at once (the
 * caller answers 413 and closes the connection) instead of buffering the rest.
 */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const tooLarge = (): BodyError =>
    new BodyError(413, 'BODY_TOO_LARGE', `The request body is over the limit of ${limit} bytes; send a smaller payload (or raise PRODUCER_MAX_BODY_BYTES).`);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        // Stop reading; the 413 goes out with `Connection: close` and the socket is then dropped.
        cleanup();
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve();
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new BodyError(400, 'MALFORMED_JSON', 'The request body is empty; send a JSON object such as {"task": "add", "data": {"a": 1, "b": 2}}.');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new BodyError(400, 'MALFORMED_JSON', `The request body is not valid JSON (${(err as Error).message}); send a JSON object such as {"task": "add", "data": {}}.`);
  }
}
