import { arch } from "node:process";

/**
 * A seccomp filter (classic BPF, as bubblewrap's --seccomp takes it) that
 * refuses new user namespaces: unshare() and clone() with CLONE_NEWUSER fail
 * with EPERM, and clone3(), whose flags a filter cannot read, with ENOSYS (C
 * libraries then fall back to clone()). A user namespace would give the agent
 * capabilities over mounts of its own, and a far larger kernel surface. For
 * a sandbox without a user namespace of its own (ralphd as root), where
 * bubblewrap's --disable-userns does not apply; used for every sandbox alike.
 */

const CLONE_NEWUSER = 0x10000000;
const EPERM = 1;
const ENOSYS = 38;
const X32_BIT = 0x40000000;

// Classic BPF opcodes.
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JSET_K = 0x45;
const RET_K = 0x06;
const RET_ALLOW = 0x7fff0000;
const retErrno = (errno: number) => 0x00050000 | errno;

/** Syscall numbers per audit architecture: unshare, clone, clone3. */
const ARCHES: Record<string, { audit: number; unshare: number[]; clone: number[]; clone3: number[] }[]> = {
  x64: [
    { audit: 0xc000003e, unshare: [272, X32_BIT + 272], clone: [56, X32_BIT + 56], clone3: [435, X32_BIT + 435] },
    // 32-bit programs on a 64-bit kernel.
    { audit: 0x40000003, unshare: [310], clone: [120], clone3: [435] },
  ],
  arm64: [
    { audit: 0xc00000b7, unshare: [97], clone: [220], clone3: [435] },
    { audit: 0x40000028, unshare: [337], clone: [120], clone3: [435] },
  ],
};

type Insn = [code: number, jt: number, jf: number, k: number];

/** The filter for this machine, or undefined on an architecture it does not know. */
export function userNamespaceFilter(machine: string = arch): Buffer | undefined {
  const arches = ARCHES[machine];
  if (!arches) return undefined;
  const prog: Insn[] = [[LD_W_ABS, 0, 0, 4]];
  // Per architecture: if it is this one, check its numbers; else go on to the next.
  for (const a of arches) {
    const body: Insn[] = [[LD_W_ABS, 0, 0, 0]];
    const checks: [number[], "flags" | "nosys"][] = [
      [a.clone3, "nosys"],
      [a.unshare, "flags"],
      [a.clone, "flags"],
    ];
    // After the comparisons come: allow; ENOSYS; load flags, test CLONE_NEWUSER, allow, EPERM.
    // A jump counts from the next instruction: past the comparisons left, then into that block.
    const numbers = checks.flatMap(([nrs, what]) => nrs.map((nr) => ({ nr, what })));
    numbers.forEach(({ nr, what }, i) => {
      const comparisonsLeft = numbers.length - 1 - i;
      body.push([JEQ_K, comparisonsLeft + (what === "nosys" ? 1 : 2), 0, nr]);
    });
    body.push([RET_K, 0, 0, RET_ALLOW]);
    body.push([RET_K, 0, 0, retErrno(ENOSYS)]);
    body.push([LD_W_ABS, 0, 0, 16]);
    body.push([JSET_K, 1, 0, CLONE_NEWUSER]);
    body.push([RET_K, 0, 0, RET_ALLOW]);
    body.push([RET_K, 0, 0, retErrno(EPERM)]);
    // Not this architecture: skip its block.
    prog.push([JEQ_K, 0, body.length, a.audit]);
    prog.push(...body);
  }
  // An architecture none of the above: refuse what it asks rather than guess its numbers.
  prog.push([RET_K, 0, 0, retErrno(ENOSYS)]);
  const buf = Buffer.alloc(prog.length * 8);
  prog.forEach(([code, jt, jf, k], i) => {
    buf.writeUInt16LE(code, i * 8);
    buf.writeUInt8(jt, i * 8 + 2);
    buf.writeUInt8(jf, i * 8 + 3);
    buf.writeUInt32LE(k >>> 0, i * 8 + 4);
  });
  return buf;
}
