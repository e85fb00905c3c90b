import { InvalidInputError } from "../util/errors.js";

/** What a one-time enrolment token says about itself (its claims; the controller checks the signature). */
export interface EnrolmentToken {
  jwt: string;
  /** The controller that issued it, e.g. https://ziti.example.com:1280 */
  controller: string;
  expiresAt: Date | undefined;
}

const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

const decode = (part: string): Record<string, unknown> | undefined => {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
};

/** True when `text` looks like a JWT (an enrolment token), not an enrolled identity file. */
export const looksLikeToken = (text: string): boolean => JWT.test(text.trim());

/**
 * Reads an enrolment token and refuses, before any network call, one that is
 * not a token or has expired. Never quotes the token: it is a secret.
 */
export function readEnrolmentToken(text: string, source: string): EnrolmentToken {
  const jwt = text.trim();
  const claims = JWT.test(jwt) ? decode(jwt.split(".")[1]!) : undefined;
  if (!claims || typeof claims.iss !== "string" || claims.em !== "ott") {
    throw new InvalidInputError(`${source} is not a one-time enrolment token: create one on the network's host with 'ralph ziti identity create NAME --role client|daemon'`);
  }
  const expiresAt = typeof claims.exp === "number" ? new Date(claims.exp * 1000) : undefined;
  if (expiresAt && expiresAt.getTime() <= Date.now()) {
    throw new InvalidInputError(`the enrolment token in ${source} expired at ${expiresAt.toISOString()}: revoke the identity and create it again on the network's host ('ralph ziti identity revoke NAME', then 'ralph ziti identity create NAME ...')`);
  }
  return { jwt, controller: claims.iss, expiresAt };
}
