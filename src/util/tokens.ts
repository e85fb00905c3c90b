// JSON Web Tokens: the Ziti SDK logs session tokens (e.g. "unable to unbind
// session ... sessionId=eyJ..."), and a session token is a credential.
const JWT = /\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*/g;

/** The line with every JWT in it replaced by "***", for logs of processes we do not control. */
export const withoutTokens = (line: string): string => line.replace(JWT, "***");
