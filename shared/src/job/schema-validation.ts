import type { StandardSchemaV1 } from './standard-schema.js';

/** Where a value broke its schema: the field's path (`data.to`, `data.items[2].sku`) and why. */
export interface SchemaProblem {
  field: string;
  message: string;
}

export type SchemaCheck = { ok: true; value: unknown } | { ok: false; problem: SchemaProblem; issues: number };

function pathOf(issue: StandardSchemaV1.Issue): string {
  let field = 'data';
  for (const segment of issue.path ?? []) {
    const key = typeof segment === 'object' && segment !== null ? segment.key : segment;
    field += typeof key === 'number' ? `[${key}]` : `.${String(key)}`;
  }
  return field;
}

/** True for a Standard Schema (an object with `~standard.validate`). */
export function isStandardSchema(value: unknown): value is StandardSchemaV1 {
  const props = (value as { '~standard'?: { validate?: unknown } } | null)?.['~standard'];
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof props?.validate === 'function';
}

/** Validates a job's data; the first issue names the field. Its `value` is what the handler gets. */
export async function checkSchema(schema: StandardSchemaV1, data: unknown): Promise<SchemaCheck> {
  const result = await schema['~standard'].validate(data);
  if (!result.issues) return { ok: true, value: result.value };
  const first = result.issues[0];
  return {
    ok: false,
    problem: first ? { field: pathOf(first), message: first.message } : { field: 'data', message: 'is invalid' },
    issues: result.issues.length,
  };
}

/** One sentence for a failed check: `Task "send-email": data.to: Expected string (and 1 more issue)`. */
export function describeSchemaProblem(task: string, check: Extract<SchemaCheck, { ok: false }>): string {
  const more = check.issues > 1 ? ` (and ${check.issues - 1} more issue${check.issues > 2 ? 's' : ''})` : '';
  return `Task "${task}": ${check.problem.field}: ${check.problem.message}${more}; send data that matches the task's schema.`;
}
