/** What a revoke or a forced shutdown needs from a running attempt. */
export interface Abortable {
  abort(reason: unknown): void;
}

/**
 * One attempt's cancellation (time limit, revoke, forced shutdown). A real AbortSignal costs a
 * few microseconds to make and to listen to; most handlers never read `ctx.signal`, so it is made
 * only when asked for, already aborted if the attempt was.
 */
export class AttemptAbort implements Abortable {
  #controller: AbortController | null = null;
  #aborted = false;
  #reason: unknown = undefined;
  #listener: ((reason: unknown) => void) | null = null;

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
    this.#listener?.(reason);
  }

  /** The one internal listener: the attempt runner settling early. */
  onAbort(listener: ((reason: unknown) => void) | null): void {
    this.#listener = listener;
  }
}
