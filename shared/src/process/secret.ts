import { inspect } from 'node:util';

const REDACTED = '[redacted]';

/**
 * Holds a password or token so that logging, JSON-encoding or inspecting it never prints it.
 * Call `reveal()` only where the value is handed to Redis or compared.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [inspect.custom](): string {
    return `Secret(${REDACTED})`;
  }
}

const URL_CREDENTIALS = /(rediss?:\/\/)([^@/\s]*)@/gi;

/** Removes credentials from any redis URL in a string. */
export function scrubSecrets(text: string): string {
  return text.replace(URL_CREDENTIALS, '$1***@');
}
