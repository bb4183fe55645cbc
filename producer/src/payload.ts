import { ValidationError, PayloadTooLargeError } from './errors.js';

function describe(value: unknown): string | null {
  switch (typeof value) {
    case 'function':
      return 'a function';
    case 'bigint':
      return 'a BigInt (send it as a string)';
    case 'symbol':
      return 'a Symbol';
    case 'number':
      return Number.isFinite(value) ? null : `${String(value)} (JSON has no such number)`;
    default:
      break;
  }
  if (value instanceof Map || value instanceof Set) return `a ${value.constructor.name} (convert it to an object or array)`;
  return null;
}

/** Deepest nesting of arrays and objects in a payload (the HTTP API refuses deeper bodies too). */
export const MAX_PAYLOAD_DEPTH = 64;

/** Walks the payload and throws at the first value JSON would drop, mangle or choke on. */
function assertJsonValue(value: unknown, path: string, seen: Set<object>, depth: number): void {
  const bad = describe(value);
  if (bad) throw new ValidationError('PAYLOAD_NOT_JSON', path, `${path} is ${bad}; job payloads must be plain JSON (objects, arrays, strings, finite numbers, booleans, null).`);
  if (value === null || typeof value !== 'object') return;
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return;
  if (seen.has(value)) throw new ValidationError('PAYLOAD_NOT_JSON', path, `${path} refers back to itself (a cycle); job payloads must be plain JSON trees.`);
  if (depth >= MAX_PAYLOAD_DEPTH) {
    throw new ValidationError('PAYLOAD_TOO_DEEP', 'data', `data nests arrays and objects more than ${MAX_PAYLOAD_DEPTH} levels deep; flatten the payload.`);
  }
  seen.add(value);
  if (Array.isArray(value)) value.forEach((item, i) => assertJsonValue(item, `${path}[${i}]`, seen, depth + 1));
  else for (const [key, item] of Object.entries(value)) if (item !== undefined) assertJsonValue(item, `${path}.${key}`, seen, depth + 1);
  seen.delete(value);
}

/**
 * Checks that `data` is JSON-serialisable and at most `limitBytes` once serialised; returns
 * the size. Throws ValidationError / PayloadTooLargeError naming the field and the fix.
 */
export function checkPayload(data: unknown, limitBytes: number): number {
  if (data === undefined) {
    throw new ValidationError('PAYLOAD_NOT_JSON', 'data', 'data is undefined; pass a JSON value (use null or {} for "no data").');
  }
  assertJsonValue(data, 'data', new Set(), 0);
  const bytes = Buffer.byteLength(JSON.stringify(data), 'utf8');
  if (bytes > limitBytes) throw new PayloadTooLargeError(bytes, limitBytes);
  return bytes;
}
