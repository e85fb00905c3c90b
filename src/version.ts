import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The package root: src/ and dist/ both sit right below it. */
export const PACKAGE_ROOT: string = fileURLToPath(new URL("..", import.meta.url));

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };

export const VERSION: string = pkg.version;
