export interface Summary {
  n: number;
  avg_ms: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  min_ms: number;
  max_ms: number;
}

const round = (x: number) => Math.round(x * 1000) / 1000;

export function summarize(samples: number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  const pct = (p: number) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
  return {
    n: s.length,
    avg_ms: round(s.reduce((a, b) => a + b, 0) / s.length),
    p50_ms: round(pct(50)),
    p95_ms: round(pct(95)),
    p99_ms: round(pct(99)),
    min_ms: round(s[0]!),
    max_ms: round(s[s.length - 1]!),
  };
}

export function table(rows: [string, Summary][], baseline: Summary): string {
  const cols = ["avg_ms", "p50_ms", "p95_ms", "p99_ms", "min_ms", "max_ms"] as const;
  const head = ["", ...cols.map((c) => c.replace("_ms", "")), "avg ratio", "avg +ms", "p99 +ms"];
  const body = rows.map(([name, s]) => [
    name,
    ...cols.map((c) => s[c].toFixed(2)),
    (s.avg_ms / baseline.avg_ms).toFixed(2) + "x",
    (s.avg_ms - baseline.avg_ms).toFixed(2),
    (s.p99_ms - baseline.p99_ms).toFixed(2),
  ]);
  const all = [head, ...body];
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all.map((r) => r.map((c, i) => c.padStart(widths[i]!)).join("  ")).join("\n");
}
