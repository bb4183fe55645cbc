/**
 * Type-level checks of typed tasks, compiled by `pnpm run typecheck` (test/tsconfig.json) and
 * never run: each `@ts-expect-error` fails the type check if its line compiles.
 */
import { createProducer, startApiServer } from '@taskline/producer';
import { defineTasks, type TaskMapOf } from '@taskline/worker';
import { createSilentLogger, type StandardSchemaV1 } from '@taskline/shared';

/** A hand-made Standard Schema (what zod/valibot/arktype give): input `{ n: number }`. */
declare const countSchema: StandardSchemaV1<{ n: number }, { n: number }>;

const tasks = defineTasks({
  'send-email': { run: async (data: { to: string; subject?: string }) => ({ messageId: `<${data.to}>` }) },
  count: { schema: countSchema, run: (data: { n: number }) => data.n * 2 },
  untyped: { run: () => undefined },
});

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
function expectType<T extends true>(): T | undefined {
  return undefined;
}

export async function typedProducer(): Promise<void> {
  const producer = createProducer<typeof tasks>();
  const job = await producer.enqueue('send-email', { to: 'a@example.com' });
  const _record = await producer.waitForResult(job.id, { timeoutMs: 1000 });
  expectType<Same<typeof _record.result, { messageId: string } | undefined>>();
  const _read = await producer.getResult(job.id);
  expectType<Same<NonNullable<typeof _read>['result'], { messageId: string } | undefined>>();
  const counted = await producer.enqueue('count', { n: 1 });
  expectType<Same<Awaited<ReturnType<typeof producer.waitForResult<'count'>>>['result'], number | undefined>>();
  void counted;

  // @ts-expect-error a misspelt task name does not compile
  await producer.enqueue('send-emial', { to: 'a@example.com' });
  // @ts-expect-error data of the wrong shape does not compile
  await producer.enqueue('send-email', { to: 42 });
  // @ts-expect-error a required field missing does not compile
  await producer.enqueue('send-email', { subject: 'hi' });
  // @ts-expect-error the schema's input type is checked
  await producer.enqueue('count', { n: 'one' });
  // @ts-expect-error bulk jobs are checked too
  await producer.enqueueBulk([{ task: 'count', data: { m: 1 } }]);
  await producer.enqueueBulk([{ task: 'count', data: { n: 1 } }, { task: 'send-email', data: { to: 'b@example.com' } }]);

  // An id from elsewhere (a plain string) still works, with an untyped result.
  const _other = await producer.getResult('00000000-0000-4000-8000-000000000000');
  expectType<Same<NonNullable<typeof _other>['result'], unknown>>();
  // A typed producer serves the HTTP API like any other.
  await startApiServer({ producer, logger: createSilentLogger() });
}

export async function producerGivenTheTasks(): Promise<void> {
  const producer = createProducer({ tasks });
  // @ts-expect-error typed by the `tasks` option as well
  await producer.enqueue('nope', {});
  await producer.enqueue('count', { n: 2 });
}

export async function producerTypedByATaskMap(): Promise<void> {
  const producer = createProducer<{ resize: { data: { url: string }; result: { width: number } } }>();
  const job = await producer.enqueue('resize', { url: 'https://example.com/a.png' });
  const _record = await producer.waitForResult(job.id, { timeoutMs: 1000 });
  expectType<Same<typeof _record.result, { width: number } | undefined>>();
  // @ts-expect-error not a task of the map
  await producer.enqueue('crop', { url: '' });
  expectType<Same<TaskMapOf<typeof tasks>['count']['data'], { n: number }>>();
}

export async function untypedProducer(): Promise<void> {
  const producer = createProducer();
  const job = await producer.enqueue('anything', { any: ['data'] });
  const _record = await producer.waitForResult(job.id, { timeoutMs: 1000 });
  expectType<Same<typeof _record.result, unknown>>();
  await producer.enqueueBulk([{ task: 'x', data: 1 }]);
}
