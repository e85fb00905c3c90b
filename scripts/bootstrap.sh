# Sourced by the README's commands: installs everything the project needs
# that is not already there. Safe to run again; each step is skipped when done.
set -euo pipefail

step() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 6; }

cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v node >/dev/null || die "Node.js 20 or newer is required: install it (e.g. 'apt-get install nodejs' from NodeSource, or nvm) and run this again"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js $(node --version) is too old: install Node.js 20 or newer"
command -v git >/dev/null || die "git is required: install it (e.g. 'apt-get install git')"

# Every loop runs in a bubblewrap sandbox.
if ! command -v bwrap >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "Installing bubblewrap (every loop runs in a bubblewrap sandbox)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
  else
    die "bubblewrap is required: every loop runs in a bubblewrap sandbox. Install it (e.g. 'sudo apt-get install bubblewrap') and run this again"
  fi
fi

# Install when node_modules is missing or older than the lock file. Not
# `npm ci`: opencode-ai lists a binary package per platform as optional, and a
# registry mirror that serves only this platform's leaves the others out of
# the lock file, which `npm ci` then refuses as out of sync.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "Installing npm packages (better-sqlite3 may compile, ~1 min)"
  npm install --no-audit --no-fund
else
  step "npm packages are installed"
  npm run --silent build
fi

# The ziti binary: built once from the Go module proxy, cached per version.
step "Checking the ziti binary (first build takes several minutes)"
node dist/cli/ralph.js ziti install
