#!/usr/bin/env bash
# The main job on the embedded defaults: OpenZiti quickstart on loopback, a
# local ralphd, and an example Ralph loop started remotely through the overlay.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec node dist/cli/ralph.js demo "$@"
