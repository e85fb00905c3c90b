/**
 * Where a `go build` from the module proxy is, told from go's own output: the
 * modules it downloads (`go: downloading M V` while it lists the packages),
 * then the packages it compiles (`go build -v` names each one).
 */
export class BuildProgress {
  private phase: "downloading" | "compiling" = "downloading";
  private downloaded = 0;
  private compiled = 0;
  private packages = 0;
  private readonly t0 = Date.now();

  /** A line of go's output during the listing (downloads) or the build (compiled packages). */
  line(text: string): void {
    const l = text.trim();
    if (l.startsWith("go: downloading ")) this.downloaded++;
    else if (this.phase === "compiling" && /^[\w.~-]+(\/[\w.~-]+)*$/.test(l)) this.compiled++;
  }

  /** The listing is done: `packages` is how many the build may compile (fewer when some are cached). */
  compiling(packages: number): void {
    this.phase = "compiling";
    this.packages = packages;
  }

  elapsed(now = Date.now()): string {
    const s = Math.round((now - this.t0) / 1000);
    return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  }

  describe(now = Date.now()): string {
    return this.phase === "downloading"
      ? `downloading modules: ${this.downloaded} so far (${this.elapsed(now)})`
      : `compiling: ${this.compiled} of at most ${this.packages} packages${this.downloaded ? ` (${this.downloaded} modules downloaded)` : ""} (${this.elapsed(now)})`;
  }
}
