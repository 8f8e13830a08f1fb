// Runs inside the demo page (added with page.addScriptTag): small wrappers around the page's
// FlashWorkerClient that return plain data (tokens, figures, errors as { name, code, message }), so
// the Node side of the test only passes arguments and compares results. Plain JS on purpose: it is
// loaded as is, not through vitest's transform.
(() => {
  const plainError = (e) => ({ name: e?.name, code: e?.code, message: String(e?.message ?? e), details: e?.details });

  window.t = {
    client: undefined,

    /** A fresh engine (a new worker); the previous one is terminated. */
    fresh() {
      window.t.client?.terminate();
      window.t.client = window.flashllmDemo.FlashWorkerClient.create();
    },

    /** `where`: { url } | { opfs } | { input: selector of a file input } | { spec: a ModelSourceSpec }. */
    async load(where, options) {
      const source = where.spec ?? where.url ?? (where.opfs ? { kind: "opfs", name: where.opfs } : document.querySelector(where.input).files[0]);
      const progress = [];
      try {
        const info = await window.t.client.load(source, { ...options, onProgress: (p) => progress.push(p) });
        return { info, progress };
      } catch (e) {
        return { error: plainError(e), progress };
      }
    },

    /** Greedy generation; aborts through an AbortSignal after `abortAfter` tokens if given. */
    async generate(prompt, options, abortAfter) {
      const c = new AbortController();
      const tokens = [];
      let peak = 0;
      let last;
      try {
        for await (const t of window.t.client.generate(prompt, { ...options, signal: c.signal })) {
          tokens.push(t.token);
          peak = Math.max(peak, t.stats.peakWasmMemoryBytes);
          last = t.stats;
          if (tokens.length === abortAfter) c.abort();
        }
        return { tokens, peak, last, result: window.t.client.lastStats };
      } catch (e) {
        return { tokens, peak, last, error: plainError(e) };
      }
    },

    /** A chat reply (streamed like generate). */
    async chat(messages, options) {
      const tokens = [];
      let text = "";
      try {
        for await (const t of window.t.client.chat(messages, options)) {
          tokens.push(t.token);
          text += t.text;
        }
        return { tokens, text, result: window.t.client.lastStats };
      } catch (e) {
        return { tokens, text, error: plainError(e) };
      }
    },

    /** Import into OPFS; with `abortMidway`, aborts at the first progress report past 0 bytes. */
    async importToOpfs(from, name, options, abortMidway) {
      const c = new AbortController();
      const progress = [];
      const source = typeof from === "string" ? from : document.querySelector(from.input).files[0];
      try {
        const result = await window.t.client.importToOpfs(source, name, {
          ...options,
          signal: c.signal,
          onProgress: (p) => {
            progress.push(p);
            if (abortMidway && p.loaded > 0) c.abort();
          },
        });
        return { result, progress };
      } catch (e) {
        return { error: plainError(e), progress };
      }
    },

    async storage() {
      return window.t.client.storage();
    },
  };
})();
