#!/usr/bin/env bash
# The main job on a fresh machine: the embedded default (SQLite, in-process RPC).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/setup-venv.sh
exec .venv/bin/stackcore demo "$@"
