import { accessSync, constants } from "node:fs";

/** Whether this process may use `path` so (`constants.X_OK`, `W_OK`...); false when it is missing. */
export function canAccess(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

export const isExecutable = (path: string): boolean => canAccess(path, constants.X_OK);
export const isWritable = (path: string): boolean => canAccess(path, constants.W_OK);
