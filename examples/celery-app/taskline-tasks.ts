// The taskline side of the example: the Celery tasks routed to taskline, under their Celery names.
// Run: taskline-worker start --tasks examples/celery-app/taskline-tasks.ts --celery-queues taskline
import { celeryTask, defineTasks } from '@taskline/worker';

export default defineTasks({
  // data is { args, kwargs }; celeryTask spreads args as Python would.
  'tasks.add': { run: celeryTask((x: number, y: number) => x + y) },
  'tasks.where': { run: celeryTask(() => 'taskline') },
  'tasks.fail': {
    run: celeryTask((message: string) => {
      throw new Error(message);
    }),
  },
  'tasks.tick': { run: celeryTask(() => 'tick') },
});
