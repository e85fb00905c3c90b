/**
 * Where text holds a control character other than newline and tab (C0, DEL
 * or C1): what guidance and other free text may not carry into a prompt or
 * a terminal. The character and its offset, or undefined.
 */
export function firstControl(text: string): { offset: number; hex: string } | undefined {
  const m = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.exec(text);
  return m ? { offset: m.index, hex: `0x${m[0].charCodeAt(0).toString(16).padStart(2, "0")}` } : undefined;
}

/** Bytes as UTF-8 text; undefined when they are not valid UTF-8. */
export function utf8(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}
