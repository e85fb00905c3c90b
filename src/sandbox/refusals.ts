/**
 * Reports refused connections as events without letting an agent flood the
 * log: the first refusal of a host:port is reported at once, later ones are
 * counted and reported together at most every `windowMs`.
 */
export function refusalReporter(report: (e: { host: string; port: number; count: number }) => void, windowMs = 10_000): { refused: (host: string, port: number) => void; flush: () => void } {
  const pending = new Map<string, { host: string; port: number; count: number; timer?: NodeJS.Timeout }>();
  const flushOne = (key: string) => {
    const p = pending.get(key);
    if (!p) return;
    clearTimeout(p.timer);
    pending.delete(key);
    if (p.count > 0) report({ host: p.host, port: p.port, count: p.count });
  };
  return {
    refused: (host, port) => {
      const key = `${host}:${port}`;
      const p = pending.get(key);
      if (p) {
        p.count++;
        return;
      }
      report({ host, port, count: 1 });
      const entry: { host: string; port: number; count: number; timer?: NodeJS.Timeout } = { host, port, count: 0 };
      entry.timer = setTimeout(() => flushOne(key), windowMs).unref();
      pending.set(key, entry);
    },
    flush: () => {
      for (const key of [...pending.keys()]) flushOne(key);
    },
  };
}
