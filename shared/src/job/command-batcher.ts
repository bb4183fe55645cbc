/**
 * Gathers the calls made within one turn of the event loop and sends them as one command.
 * Many jobs finishing together then cost one Redis command, not one each: the per-command
 * client overhead, not Redis, is what a busy worker spends its CPU on.
 */
export class CommandBatcher<Item, Answer> {
  readonly #send: (items: Item[]) => Promise<Answer[]>;
  readonly #maxBatch: number;
  #items: Item[] = [];
  #waiters: Array<{ resolve: (answer: Answer) => void; reject: (err: unknown) => void }> = [];
  #scheduled = false;

  /** `send` answers the items in order; a rejection fails every item of that batch. */
  constructor(send: (items: Item[]) => Promise<Answer[]>, maxBatch = 200) {
    this.#send = send;
    this.#maxBatch = maxBatch;
  }

  submit(item: Item): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      this.#items.push(item);
      this.#waiters.push({ resolve, reject });
      if (this.#items.length >= this.#maxBatch) this.#flush();
      else if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#items.length === 0) return;
    const items = this.#items;
    const waiters = this.#waiters;
    this.#items = [];
    this.#waiters = [];
    this.#send(items).then(
      answers => waiters.forEach((w, i) => w.resolve(answers[i] as Answer)),
      (err: unknown) => waiters.forEach(w => w.reject(err)),
    );
  }
}
