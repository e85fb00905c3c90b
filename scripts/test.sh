#!/usr/bin/env bash
# The whole test suite: unit tests, then integration tests against a real
# OpenZiti network and real opencode servers.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec npm test
