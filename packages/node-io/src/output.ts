/**
 * Stdout as a stream that can go away. `flashllm run … | head -c 100` closes the pipe while text is
 * still coming (EPIPE): the command stops quietly and promptly (its signal aborts generation). A full
 * disk or another write error (ENOSPC, EIO) means output was lost: it is reported and the exit code is 1.
 * Without a listener Node would throw the write error as an uncaught exception with a stack trace.
 */
export class StdoutWatch {
  private readonly controller = new AbortController();
  private error: NodeJS.ErrnoException | undefined;

  constructor(private readonly stream: NodeJS.WriteStream = process.stdout) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (this.controller.signal.aborted) return; // later writes to the destroyed stream fail too
      this.error = e;
      if (e.code !== "EPIPE") {
        process.stderr.write(`flashllm: cannot write the output: ${e.code ?? e.name}: ${e.message}\n`);
        process.exitCode = 1;
      }
      this.controller.abort("stdout closed");
    });
  }

  /** Fires when stdout can take no more output. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True once stdout failed; the reason was already handled (quiet for EPIPE, reported otherwise). */
  get closed(): boolean {
    return this.controller.signal.aborted;
  }

  /** The write error, if any. */
  get cause(): NodeJS.ErrnoException | undefined {
    return this.error;
  }

  /** Writes unless stdout is gone. */
  write(text: string): void {
    if (!this.closed) this.stream.write(text);
  }
}

let shared: StdoutWatch | undefined;

/** The process's one stdout watcher (installed on first use). */
export function stdoutWatch(): StdoutWatch {
  shared ??= new StdoutWatch();
  return shared;
}
