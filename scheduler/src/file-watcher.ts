import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';

/**
 * Calls `onChange` (debounced) when a file changes: fs.watch on its directory (so editors that
 * replace the file by rename are seen) plus a periodic stat, because fs.watch can miss events on
 * network and container file systems.
 */
export class FileWatcher {
  #watcher: FSWatcher | null = null;
  #poll: NodeJS.Timeout | null = null;
  #debounce: NodeJS.Timeout | null = null;
  #signature = '';
  readonly #path: string;

  constructor(
    path: string,
    private readonly onChange: () => void,
    private readonly options: { intervalMs: number; debounceMs: number },
  ) {
    this.#path = resolve(path);
  }

  async start(): Promise<void> {
    this.#signature = await this.#stat();
    const name = basename(this.#path);
    try {
      this.#watcher = watch(dirname(this.#path), { persistent: false }, (_event, file) => {
        if (file === null || file.toString() === name) this.#changed();
      });
      this.#watcher.on('error', () => this.#watcher?.close());
    } catch {
      this.#watcher = null; // the periodic stat still covers it
    }
    this.#poll = setInterval(() => {
      this.#stat().then(sig => {
        if (sig !== this.#signature) this.#changed();
      }, () => undefined);
    }, this.options.intervalMs);
    this.#poll.unref();
  }

  #changed(): void {
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = null;
      this.#stat().then(
        sig => {
          this.#signature = sig;
          this.onChange();
        },
        () => this.onChange(),
      );
    }, this.options.debounceMs);
    this.#debounce.unref();
  }

  async #stat(): Promise<string> {
    try {
      const s = await stat(this.#path);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return 'missing';
    }
  }

  close(): void {
    this.#watcher?.close();
    this.#watcher = null;
    if (this.#poll) clearInterval(this.#poll);
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#poll = null;
    this.#debounce = null;
  }
}
