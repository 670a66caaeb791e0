#!/usr/bin/env bash
# One-command install of forge-tmux for the current user: a virtualenv, the package, the
# `forge-tmux` command in ~/.local/bin, and a first sweep. Idempotent: run it again to upgrade.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=${FORGE_TMUX_PREFIX:-${XDG_DATA_HOME:-$HOME/.local/share}/forge-tmux}
venv=$prefix/venv
bindir=${FORGE_TMUX_BINDIR:-$HOME/.local/bin}
python=${PYTHON:-python3}

say() { printf 'install.sh: %s\n' "$*"; }

[[ -x $venv/bin/python ]] || { say "creating virtualenv $venv"; "$python" -m venv "$venv"; }
say "installing forge-tmux into $venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade "$here"
mkdir -p "$bindir"
ln -sfn "$venv/bin/forge-tmux" "$bindir/forge-tmux"
say "linked $bindir/forge-tmux"
case ":$PATH:" in *":$bindir:"*) ;; *) say "note: $bindir is not on PATH; add it to use forge-tmux by name" ;; esac

say "first sweep:"
"$venv/bin/forge-tmux" sweep
