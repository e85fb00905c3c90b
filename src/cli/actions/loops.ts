import { readFileSync } from "node:fs";
import { expectOk } from "../../client/api.js";
import { ControlClient, openProxy, withControlClient } from "../../client/connection.js";
import type { Remote } from "../../client/remotes.js";
import type { AttachPoint } from "../../contract/schemas.js";
import { listEverywhere, roomiest, withLoopClient } from "../../client/fleet.js";
import { InvalidInputError, UnavailableError } from "../../util/errors.js";
import { firstControl, utf8 } from "../../util/text.js";
import { describeDaemonEvent, loopDetails, loopLine, pruned } from "../describe.js";
import { ExitCode } from "../exit-codes.js";
import { printJson, style } from "../output.js";
import { limitsOf } from "../options.js";

export interface StartFlags {
  remote?: string;
  origin?: string;
  maxIterations?: number;
  model?: string;
  maxCost?: number;
  maxTokens?: number;
  stallTimeout?: number;
  allowNet?: string[];
  memory?: number;
  maxProcesses?: number;
  cpuWeight?: number;
  json?: boolean;
}

type Flags = { remote?: string; json?: boolean };
const warn = (text: string) => process.stderr.write(`${style.yellow("warning:")} ${text}\n`);

export async function start(taskDir: string, o: StartFlags): Promise<void> {
  let remote = o.remote;
  if (remote === "any") {
    const { name, health } = await roomiest();
    process.stderr.write(`placing the loop on remote "${name}" (${health.loops.max - health.loops.active} of ${health.loops.max} slots free)\n`);
    remote = name;
  }
  const { startRemoteLoop } = await import("../../client/start.js");
  const loop = await withControlClient(remote, (c) =>
    startRemoteLoop(c, {
      taskDir,
      origin: o.origin,
      maxIterations: o.maxIterations,
      model: o.model,
      maxCostUsd: o.maxCost,
      maxTokens: o.maxTokens,
      stallTimeoutSeconds: o.stallTimeout,
      allowNet: o.allowNet,
      limits: limitsOf(o),
    }),
  );
  if (o.json) printJson(loop);
  else process.stdout.write(`${loop.id}\n`);
}

export async function ls(o: Flags): Promise<void> {
  const answers = await listEverywhere(o.remote);
  const several = answers.length > 1;
  const failed = answers.filter((a) => !a.ok);
  if (!several && failed[0]) throw failed[0].error;
  for (const a of failed) warn(`remote "${a.remote}" could not be listed: ${a.error.message}`);
  if (failed.length === answers.length) throw new UnavailableError("no remote could be listed");
  const listed = answers.flatMap((a) => (a.ok ? a.value.map((loop) => ({ remote: a.remote, loop })) : []));
  if (o.json) return printJson(listed.map(({ remote, loop }) => ({ ...loop, remote })));
  if (listed.length === 0) process.stderr.write(`no loops on ${several ? "any remote" : `remote "${answers[0]!.remote}"`} yet: 'ralph start TASK_DIR' starts one\n`);
  for (const { remote, loop } of listed) process.stdout.write(loopLine(loop, several ? remote : undefined) + "\n");
}

export async function status(id: string, o: Flags): Promise<void> {
  const loop = await withLoopClient(id, o.remote, async (_c, loop) => loop);
  if (o.json) printJson(loop);
  else process.stdout.write(loopDetails(loop) + "\n");
}

export async function logs(id: string, o: Flags & { follow?: boolean }): Promise<void> {
  const { streamEvents, isTerminal } = await import("../../client/events.js");
  await withLoopClient(id, o.remote, async (c, loop) => {
    const ended = !["starting", "running"].includes(loop.status);
    if (o.follow && loop.status === "starting") process.stderr.write(`loop ${id} is starting: waiting for its first events\n`);
    await streamEvents(c, {
      loopId: id,
      follow: Boolean(o.follow) && !ended,
      stopWhen: isTerminal,
      onGap: warn,
      onEvent: (e) => {
        if (o.json) return printJson(e);
        const text = describeDaemonEvent(e);
        if (text) process.stdout.write(text + "\n");
      },
    });
  });
}

export async function stop(id: string, o: Flags): Promise<void> {
  const { loop } = await withLoopClient(id, o.remote, (c) => expectOk(c.remoteName, c.api.loops[":id"].stop.$post({ param: { id } })));
  if (o.json) printJson(loop);
  else process.stdout.write(loopLine(loop) + "\n");
}

export async function rm(id: string, o: Flags): Promise<void> {
  const r = await withLoopClient(id, o.remote, (c) => expectOk(c.remoteName, c.api.loops[":id"].$delete({ param: { id } })));
  if (o.json) printJson(r);
  else process.stdout.write(pruned(r));
}

export async function prune(o: Flags): Promise<void> {
  const r = await withControlClient(o.remote, (c) => expectOk(c.remoteName, c.api.prune.$post()));
  if (o.json) printJson(r);
  else process.stdout.write(pruned(r));
}

export async function say(id: string, textArg: string | undefined, o: Flags & { file?: string }): Promise<void> {
  if ((textArg === undefined) === (o.file === undefined)) throw new InvalidInputError("give the guidance as TEXT or with --file FILE, not both or neither");
  const raw = o.file !== undefined ? utf8(readFileSync(o.file === "-" ? 0 : o.file)) : textArg!;
  if (raw === undefined) throw new InvalidInputError(`${o.file === "-" ? "the guidance on stdin" : o.file} is not valid UTF-8 text: guidance is plain text`);
  const text = raw.trim();
  if (!text) throw new InvalidInputError("the guidance is empty");
  const control = firstControl(text);
  if (control) throw new InvalidInputError(`the guidance holds the control character ${control.hex} at offset ${control.offset}: guidance is plain text (newlines and tabs are fine)`);
  const { runningLocalRun, sayToLocalRun } = await import("../../loop/local-runs.js");
  const local = o.remote ? undefined : runningLocalRun(id);
  if (local) {
    sayToLocalRun(local, text);
    if (o.json) printJson({ loopId: id, local: true });
    else process.stderr.write(`queued for the next iteration of local run ${id}\n`);
    return;
  }
  const r = await withLoopClient(id, o.remote, (c) => expectOk(c.remoteName, c.api.loops[":id"].say.$post({ param: { id }, json: { text } })));
  if (o.json) printJson(r);
  else process.stderr.write(`queued for the next iteration of loop ${id} (${r.pending} note(s) pending)\n`);
}

export async function notifyTest(o: Flags): Promise<void> {
  const { results } = await withControlClient(o.remote, (c) => expectOk(c.remoteName, c.api.notify.test.$post()));
  if (o.json) printJson(results);
  else if (results.length === 0) process.stderr.write('the daemon has no notification targets: add some under "notify" in its config\n');
  for (const r of o.json ? [] : results) process.stdout.write(`${r.ok ? style.green("delivered") : style.red("failed")}  ${r.target}${r.error ? `: ${r.error}` : ""}\n`);
  if (results.some((r) => !r.ok)) process.exitCode = ExitCode.Unavailable;
}

export async function attach(id: string, o: { remote?: string; printUrl?: boolean }): Promise<void> {
  const { name, remote, point } = await withLoopClient(id, o.remote, async (c, loop) => {
    // The daemon answers once the loop's opencode is up: say why this may take a moment.
    if (loop.status === "starting" || (loop.status === "running" && loop.iteration === 0)) process.stderr.write(`loop ${id} is starting: waiting for its opencode to come up\n`);
    return { name: c.remoteName, remote: c.remote, point: await expectOk(c.remoteName, c.api.loops[":id"].attach.$get({ param: { id } })) };
  });
  const auth = "Basic " + Buffer.from(`${point.username}:${point.password}`).toString("base64");
  const proxy = await openProxy(name, remote, point.service, async (url) => (await fetch(`${url}/global/health`, { headers: { authorization: auth }, signal: AbortSignal.timeout(3000) })).ok, point.terminator);
  try {
    if (o.printUrl) {
      process.stdout.write(`${proxy.url}\n`);
      process.stderr.write(`password: OPENCODE_SERVER_PASSWORD=${point.password} (Ctrl-C closes the proxy)\n`);
      await new Promise<void>((r) => {
        process.once("SIGINT", () => r());
        process.once("SIGTERM", () => r());
      });
    } else {
      process.exitCode = await attachFollowing(id, name, remote, proxy.url, point);
    }
  } finally {
    await proxy.stop();
  }
}

/**
 * opencode's TUI on the session of the iteration running now; when the loop
 * moves on to a new iteration (a new session), the TUI is restarted on it,
 * and the terminal says so. Ends with the TUI's exit code when the user
 * leaves it.
 */
async function attachFollowing(id: string, name: string, remote: Remote, url: string, point: AttachPoint): Promise<number> {
  const [{ execa }, { opencodeBinary }, { streamEvents }] = await Promise.all([import("execa"), import("../../opencode/binary.js"), import("../../client/events.js")]);
  let session = point.session;
  let next: string | undefined;
  let tui: ReturnType<typeof execa> | undefined;
  const following = new AbortController();
  const client = await ControlClient.to(name, remote);
  // The replay comes first: sessions up to the current one are old news.
  let caughtUp = session === null;
  const follow = streamEvents(client, {
    loopId: id,
    follow: true,
    signal: following.signal,
    onEvent: (e) => {
      if (e.type !== "iteration.session") return;
      if (!caughtUp) {
        caughtUp = e.sessionId === session;
        return;
      }
      if (e.sessionId === session) return;
      next = e.sessionId;
      tui?.kill("SIGTERM");
    },
  }).catch(() => undefined);
  try {
    for (;;) {
      tui = execa(opencodeBinary(), ["attach", url, ...(session ? ["--session", session] : [])], {
        stdio: "inherit",
        reject: false,
        env: { OPENCODE_SERVER_USERNAME: point.username, OPENCODE_SERVER_PASSWORD: point.password },
      });
      const r = await tui;
      if (next === undefined || next === session) return r.exitCode ?? ExitCode.Error;
      session = next;
      process.stderr.write(`loop ${id} moved on to a new iteration: attaching to its session ${session}\n`);
    }
  } finally {
    following.abort();
    await follow;
    await client.close();
  }
}
