import type { IncomingMessage } from 'node:http';
import { TasklineError } from '@taskline/shared';

/** Why a request body could not be read. */
export class BodyError extends TasklineError {
  override name = 'BodyError';
  readonly status: 400 | 413 | 415;
  constructor(status: 400 | 413 | 415, code: string, message: string) {
    super(code, message);
    this.status = status;
  }
}

/** Deepest nesting of arrays and objects a body may have: deeper ones are refused, never recursed into. */
export const MAX_JSON_DEPTH = 64;

const EXAMPLE = 'send a JSON object such as {"task": "add", "data": {"a": 1, "b": 2}}';

/**
 * Only `application/json` (UTF-8, the only charset JSON has) is read. This also refuses the
 * `text/plain` and form posts a browser sends cross-site without asking the server first.
 */
export function assertJsonContentType(req: IncomingMessage): void {
  const header = req.headers['content-type'] ?? '';
  const [type = '', ...params] = header.split(';').map(part => part.trim().toLowerCase());
  const charset = params.find(p => p.startsWith('charset='))?.slice('charset='.length).replace(/"/g, '');
  if (type !== 'application/json' || (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8')) {
    throw new BodyError(
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      `The request body must be JSON sent with "Content-Type: application/json"${header ? `, not "${header.slice(0, 100)}"` : ' (none was sent)'}; set that header.`,
    );
  }
}

/**
 * How deeply arrays and objects nest in JSON text, stopping as soon as `limit` is passed: one
 * linear pass that skips strings, so a 2,000-deep body costs nothing to refuse.
 */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads a JSON body of at most `limit` bytes. Over the limit it stops reading at once (the
 * caller answers 413 and closes the connection) instead of buffering the rest. Invalid UTF-8
 * and nesting deeper than {@link MAX_JSON_DEPTH} are 400s, never silently "fixed".
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
  let text: string;
  try {
    text = utf8.decode(Buffer.concat(chunks));
  } catch {
    throw new BodyError(400, 'INVALID_UTF8', `The request body is not valid UTF-8; encode it as UTF-8 and ${EXAMPLE}.`);
  }
  if (text.trim() === '') throw new BodyError(400, 'MALFORMED_JSON', `The request body is empty; ${EXAMPLE}.`);
  if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) {
    throw new BodyError(400, 'JSON_TOO_DEEP', `The request body nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep; flatten the payload.`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new BodyError(400, 'MALFORMED_JSON', `The request body is not valid JSON (${(err as Error).message}); ${EXAMPLE}.`);
  }
}
