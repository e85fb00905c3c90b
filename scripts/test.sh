#!/usr/bin/env bash
# The whole test suite: unit tests, then integration tests against a real
# OpenZiti network and real opencode servers.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"

# The integration tests audit every bind() of the client with strace: a
# listener that lives for a moment is invisible to polling.
if ! command -v strace >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "Installing strace for the tests' bind audit"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null
  else
    die "the tests need strace to audit bind() calls: install it (e.g. 'sudo apt-get install strace') and run this again"
  fi
fi
exec npm test
