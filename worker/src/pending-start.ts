import type { ResultBackend, TransitionAnswer, TransitionOp } from '@taskline/shared/job';

/**
 * A job's STARTED write, held back for `delayMs` so that a job finishing within that window
 * writes only its final record (one write per job instead of two). `flush()` sends it now (a
 * redelivered job, or a handler reporting progress); `cancel()` drops it if it was not sent.
 * Once sent, `onAnswer` hears what the record says (e.g. REVOKED: the attempt is aborted).
 */
export class PendingStart {
  readonly #results: ResultBackend;
  readonly #op: TransitionOp;
  readonly #onAnswer: (answer: TransitionAnswer) => void;
  readonly #onError: (err: unknown) => void;
  #timer: NodeJS.Timeout | null = null;
  #sent: Promise<TransitionAnswer> | null = null;
  #cancelled = false;

  constructor(
    results: ResultBackend,
    op: TransitionOp,
    delayMs: number,
    handlers: { onAnswer: (answer: TransitionAnswer) => void; onError: (err: unknown) => void },
  ) {
    this.#results = results;
    this.#op = op;
    this.#onAnswer = handlers.onAnswer;
    this.#onError = handlers.onError;
    if (delayMs <= 0) this.flush().catch(() => undefined);
    else this.#timer = setTimeout(() => void this.flush().catch(() => undefined), delayMs);
  }

  /** True once the write went out (or is going out). */
  get sent(): boolean {
    return this.#sent !== null;
  }

  flush(): Promise<TransitionAnswer> {
    if (this.#sent) return this.#sent;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#sent = this.#results.transition(this.#op);
    this.#sent.then(
      answer => {
        if (!this.#cancelled) this.#onAnswer(answer);
      },
      (err: unknown) => {
        if (!this.#cancelled) this.#onError(err);
      },
    );
    return this.#sent;
  }

  /** The attempt has ended: drop the write if it has not gone out, and ignore its answer. */
  cancel(): void {
    this.#cancelled = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
