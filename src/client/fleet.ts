import type { Health, LoopSummary } from "../contract/schemas.js";
import { InvalidInputError, NotFoundError, UnavailableError } from "../util/errors.js";
import { ApiError } from "../contract/errors.js";
import { expectOk } from "./api.js";
import { ControlClient, pickRemote, withClient } from "./connection.js";
import { readRemotes, type Remote } from "./remotes.js";

/** One remote's answer, or why it gave none. */
export type Answer<T> = { remote: string; ok: true; value: T } | { remote: string; ok: false; error: Error };

/** How long a remote asked among several may take: one whose network does not answer must not hold up the rest. */
const ANSWER_WITHIN_MS = 15_000;

/** Asks every remote (or the one named) at once; an unreachable remote is an answer too, not a failure. */
export async function askEach<T>(fn: (c: ControlClient) => Promise<T>, only?: string, all: Record<string, Remote> = readRemotes().remotes): Promise<Answer<T>[]> {
  const remotes: [string, Remote][] = only ? [[only, pickRemote(only).remote]] : Object.entries(all);
  if (remotes.length === 0) pickRemote();
  const ask = (name: string, remote: Remote) => withClient(ControlClient.to(name, remote), fn);
  return Promise.all(
    remotes.map(async ([name, remote]): Promise<Answer<T>> => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new UnavailableError(`remote "${name}" did not answer within ${ANSWER_WITHIN_MS / 1000} s`)), ANSWER_WITHIN_MS);
      });
      try {
        return { remote: name, ok: true, value: await (remotes.length > 1 ? Promise.race([ask(name, remote), late]) : ask(name, remote)) };
      } catch (err) {
        return { remote: name, ok: false, error: err as Error };
      } finally {
        clearTimeout(timer);
      }
    }),
  );
}

/** Every remote's loops, asked in parallel. */
export const listEverywhere = (only?: string) => askEach(async (c) => (await expectOk(c.remoteName, c.api.loops.$get())).loops, only);

/**
 * Runs `fn` with a client of the remote that has loop `id`: the one named,
 * the only one, or the one remote (asked in parallel) that knows the id.
 */
export async function withLoopClient<T>(id: string, remoteName: string | undefined, fn: (c: ControlClient, loop: LoopSummary) => Promise<T>): Promise<T> {
  const { remotes } = readRemotes();
  const names = Object.keys(remotes);
  const only = remoteName ?? (names.length === 1 ? names[0] : undefined);
  if (only !== undefined || names.length === 0) {
    const { name, remote } = pickRemote(only);
    return withClient(ControlClient.to(name, remote), async (c) => fn(c, (await expectOk(name, c.api.loops[":id"].$get({ param: { id } }))).loop));
  }
  const answers = await askEach(
    async (c) => {
      const res = await c.api.loops[":id"].$get({ param: { id } });
      return res.status === 404 ? undefined : (await expectOk(c.remoteName, Promise.resolve(res))).loop;
    },
    undefined,
    remotes,
  );
  const holders = answers.filter((a): a is Answer<LoopSummary> & { ok: true } => a.ok && a.value !== undefined);
  const failed = answers.filter((a): a is Answer<unknown> & { ok: false } => !a.ok);
  if (holders.length > 1) throw new InvalidInputError(`loop ${id} is on several remotes (${holders.map((h) => h.remote).join(", ")}): choose one with --remote NAME`);
  if (holders.length === 0) {
    const unreachable = failed.map((f) => `${f.remote}: ${f.error.message}`).join("; ");
    if (failed.length === answers.length) throw new UnavailableError(`no remote could be asked for loop ${id}: ${unreachable}`);
    throw new NotFoundError(`no loop "${id}" on ${names.filter((n) => !failed.some((f) => f.remote === n)).join(", ")}${failed.length ? ` (could not ask ${unreachable})` : ""}; 'ralph ls' lists them`);
  }
  const { remote: name, value: loop } = holders[0]!;
  return withClient(ControlClient.to(name, remotes[name]!), (c) => fn(c, loop));
}

/** The reachable remote with the most free loop slots, for `ralph start --remote any`. */
export async function roomiest(): Promise<{ name: string; health: Health }> {
  const answers = await askEach(async (c) => expectOk(c.remoteName, c.api.health.$get()));
  const reachable = answers.filter((a): a is Answer<Health> & { ok: true } => a.ok);
  if (reachable.length === 0) throw new UnavailableError(`no remote is reachable: ${answers.map((a) => `${a.remote}: ${(a as { error: Error }).error.message}`).join("; ")}`);
  const free = (h: Health) => h.loops.max - h.loops.active;
  const best = reachable.reduce((a, b) => (free(b.value) > free(a.value) ? b : a));
  if (free(best.value) <= 0) throw new ApiError("busy", `every reachable remote is running as many loops as it may (${reachable.map((r) => `${r.remote} ${r.value.loops.active}/${r.value.loops.max}`).join(", ")}): stop one, or try again later`);
  return { name: best.remote, health: best.value };
}
