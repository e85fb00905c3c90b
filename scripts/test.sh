#!/usr/bin/env bash
# The whole test suite: unit tests, then integration tests against a real
# OpenZiti network and real opencode servers.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"

# The integration tests audit every bind() of the client with strace (a
# listener that lives for a moment is invisible to polling), and simulate
# three hosts with network namespaces (ip, ss from iproute2).
missing=()
command -v strace >/dev/null || missing+=(strace)
{ command -v ip >/dev/null && command -v ss >/dev/null; } || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "Installing ${missing[*]} for the tests' bind audit and network namespaces"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    die "the tests need ${missing[*]} (strace audits bind() calls; iproute2's ip and ss make the three-host namespaces): install them (e.g. 'sudo apt-get install ${missing[*]}') and run this again"
  fi
fi
exec npm test
