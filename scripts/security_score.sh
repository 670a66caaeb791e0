#!/usr/bin/env bash
# Prints the `systemd-analyze security` exposure score of the system-mode sweep unit, rendered for
# a user (default: $SUDO_USER or you, as `units render` does) by the forge-tmux on PATH or in .venv. Lower is better; the aim is <= 2.0.
#   scripts/security_score.sh [USER]
set -euo pipefail
cd "$(dirname "$0")/.."
user_args=()
[[ -z ${1:-} ]] || user_args=(--run-as "$1")
exe=$(command -v forge-tmux || true)
[[ -x .venv/bin/forge-tmux ]] && exe=$PWD/.venv/bin/forge-tmux
[[ -n $exe ]] || { echo "security_score.sh: forge-tmux not found (run scripts/test first)" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$exe" units render --mode system "${user_args[@]}" --exec "$exe" --out "$out" >/dev/null
systemd-analyze security --offline=true --man=no "$out/forge-tmux-socket-sweep.service" | tail -n 1
