import { closeSync, existsSync, mkdirSync, openSync, renameSync, statSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/**
 * An append-only log file for a long-lived process that keeps at most about
 * twice `maxBytes` on disk: past the limit the file becomes FILE.1 (replacing
 * the previous one) and a new FILE starts.
 */
export class BoundedLog {
  private fd: number;
  private size: number;

  constructor(
    private readonly file: string,
    private readonly maxBytes = 10 * 2 ** 20,
  ) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    this.fd = openSync(file, "a", 0o600);
    this.size = existsSync(file) ? statSync(file).size : 0;
  }

  write(data: string | Buffer): void {
    if (this.fd < 0) return;
    if (this.size >= this.maxBytes) this.rotate();
    this.size += writeSync(this.fd, typeof data === "string" ? Buffer.from(data) : data);
  }

  end(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
  }

  private rotate(): void {
    closeSync(this.fd);
    renameSync(this.file, `${this.file}.1`);
    this.fd = openSync(this.file, "a", 0o600);
    this.size = 0;
  }
}
