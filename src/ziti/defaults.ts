// Constants the command definitions show in --help: kept apart from the modules that use them, which are slow to load.

/** The pinned OpenZiti release that `ralph ziti install` builds. */
export const ZITI_VERSION = "v1.7.2";
export const DEFAULT_CTRL_PORT = 1280;
export const DEFAULT_ROUTER_PORT = 3022;
/** The remote and daemon name of this machine's own network. */
export const LOCAL_NAME = "local";
