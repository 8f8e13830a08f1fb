// The per-token chart: bytes read (bars) with the cache hit rate (line, 0–100 %) above, the time split
// (stacked bars) below. The caption is HTML beside the canvas, so it wraps on a phone instead of being cut.

/** One token's figures (differences of the engine's cumulative stats). */
export interface TokenFigures {
  bytes: number;
  hitRate: number;
  ioMs: number;
  memoryMs: number;
  computeMs: number;
}

export function drawChart(c: HTMLCanvasElement, figures: readonly TokenFigures[], formatBytes: (n: number) => string): void {
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth || c.width;
  // Wide screens: 3:1. Phones: taller, or the two panels would be slivers.
  const h = Math.round(Math.max((w * 240) / 720, Math.min(w * 0.75, 240)));
  if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
    c.width = Math.round(w * dpr);
    c.height = Math.round(h * dpr);
    c.style.height = `${h}px`;
  }
  const g = c.getContext("2d")!;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const css = getComputedStyle(document.documentElement);
  const color = (v: string) => css.getPropertyValue(v).trim();
  const left = 58, right = 36, gap = 18;
  const ph = (h - gap - 16) / 2;
  const n = Math.max(figures.length, 20);
  const bw = (w - left - right) / n;
  // Scale to the tokens after the first: the first also carries the prompt and a cold cache, and would
  // flatten the rest. Its bars are clipped at the top.
  const scaled = figures.length > 1 ? figures.slice(1) : figures;
  const maxBytes = Math.max(1, ...scaled.map((f) => f.bytes));
  const maxMs = Math.max(0.001, ...scaled.map((f) => f.ioMs + f.memoryMs + f.computeMs));
  const top = 8, top2 = 8 + ph + gap;
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = color("--muted");
  g.textAlign = "right";
  g.fillText(formatBytes(maxBytes), left - 6, top + 10);
  g.fillText("0", left - 6, top + ph);
  g.fillText(`${maxMs.toFixed(1)} ms`, left - 6, top2 + 10);
  g.fillText("0", left - 6, top2 + ph);
  g.textAlign = "left";
  g.fillText("100%", w - right + 4, top + 10);
  g.fillText("0%", w - right + 4, top + ph);
  g.strokeStyle = color("--line");
  g.lineWidth = 1;
  g.strokeRect(left, top, w - left - right, ph);
  g.strokeRect(left, top2, w - left - right, ph);
  figures.forEach((f, i) => {
    const x = left + i * bw + bw * 0.1;
    const bwi = Math.max(1, bw * 0.8);
    const bh = Math.min(ph, (f.bytes / maxBytes) * ph);
    g.fillStyle = color("--bytes");
    g.fillRect(x, top + ph - bh, bwi, bh);
    let y = top2 + ph;
    for (const [v, col] of [[f.ioMs, "--io"], [f.memoryMs, "--mem"], [f.computeMs, "--cpu"]] as const) {
      const hh = Math.min(y - top2, (v / maxMs) * ph);
      g.fillStyle = color(col);
      g.fillRect(x, y - hh, bwi, hh);
      y -= hh;
    }
  });
  g.strokeStyle = color("--hits");
  g.lineWidth = 2;
  g.beginPath();
  figures.forEach((f, i) => {
    const x = left + (i + 0.5) * bw;
    const y = top + ph - f.hitRate * ph;
    if (i === 0) g.moveTo(x, y);
    else g.lineTo(x, y);
  });
  g.stroke();
}
