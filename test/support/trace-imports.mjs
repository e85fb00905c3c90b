// A module hook that names, on stderr, every module the program resolves: what a command loads.
import { register } from "node:module";

register(
  "data:text/javascript," +
    encodeURIComponent('export async function resolve(s, c, next) { const r = await next(s, c); process.stderr.write("LOADED " + r.url + "\\n"); return r; }'),
);
