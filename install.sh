#!/usr/bin/env bash
# One-command install of forge-tmux: a virtualenv, the package, the `forge-tmux` command on PATH,
# the systemd units (sweep timer, boot hook) enabled, and a first sweep. Idempotent: run it again
# to upgrade. Where no systemd manager runs, the command is still installed and the first sweep
# still runs; the script says plainly that the timer could not be enabled, and exits 0.
#
#   ./install.sh                 for the current user (systemctl --user units)
#   ./install.sh --system        system units as root, running as $SUDO_USER (or --run-as NAME)
#   ./install.sh --with-bot      also the Telegram bot's unit (configure Telegram first)
#   ./install.sh --with-post-boot  also forge-post-boot-sessions.service ([[boot.sessions]])
#   ./install.sh --uninstall     [--system] removes the units, the command, the man page and
#                                the virtualenv
#
# Environment: FORGE_TMUX_PREFIX (virtualenv parent), FORGE_TMUX_BINDIR (where the command is
# linked), FORGE_TMUX_MANDIR (man page root; default BINDIR/../share/man, which man(1) searches
# for every directory on PATH), PYTHON (interpreter for the virtualenv).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

mode=user
action=install
run_as=
extras=()
while (($#)); do
  case $1 in
    --system) mode=system ;;
    --uninstall) action=uninstall ;;
    --with-bot|--with-post-boot) extras+=("$1") ;;
    # --user is the old spelling: it read like systemctl's --user (the user manager).
    --run-as|--user)
      (($# > 1)) || { printf 'install.sh: %s needs a user name\n' "$1" >&2; exit 2; }
      run_as=$2; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) printf 'install.sh: unknown option %s (try --help)\n' "$1" >&2; exit 2 ;;
  esac
  shift
done

say() { printf 'install.sh: %s\n' "$*"; }

if [[ $mode == system ]]; then
  [[ $(id -u) -eq 0 ]] || { say "--system needs root (sudo ./install.sh --system)" >&2; exit 2; }
  # Units run as another user: everything they execute must live where that user can read it.
  prefix=${FORGE_TMUX_PREFIX:-/opt/forge-tmux}
  bindir=${FORGE_TMUX_BINDIR:-/usr/local/bin}
  default_python=/usr/bin/python3
  run_as=${run_as:-${SUDO_USER:-root}}
  unit_args=(--mode system --run-as "$run_as")
else
  [[ -z $run_as ]] || { say "--run-as is for --system" >&2; exit 2; }
  prefix=${FORGE_TMUX_PREFIX:-${XDG_DATA_HOME:-$HOME/.local/share}/forge-tmux}
  bindir=${FORGE_TMUX_BINDIR:-$HOME/.local/bin}
  default_python=python3
  unit_args=(--mode user)
fi
venv=$prefix/venv
exe=$venv/bin/forge-tmux
manpage=${FORGE_TMUX_MANDIR:-$(dirname "$bindir")/share/man}/man1/forge-tmux.1
python=${PYTHON:-$default_python}
command -v "$python" >/dev/null || python=python3

if [[ $action == uninstall ]]; then
  if [[ -x $exe ]]; then
    "$exe" units uninstall --mode "$mode" || say "units uninstall reported a problem (see above)"
  fi
  if [[ -L $bindir/forge-tmux && $(readlink "$bindir/forge-tmux") == "$exe" ]]; then
    rm -f "$bindir/forge-tmux"
    say "removed $bindir/forge-tmux"
    rmdir "$bindir" 2>/dev/null || true  # only when nothing else lives there
  fi
  if [[ -f $manpage ]] && grep -q '^\.TH "FORGE-TMUX" "1"' "$manpage"; then
    rm -f "$manpage"
    say "removed $manpage"
    # Only directories left empty (man1, man, share), never further up.
    rmdir "$(dirname "$manpage")" "${manpage%/man1/*}" "$(dirname "${manpage%/man1/*}")" \
      2>/dev/null || true
  fi
  if [[ -d $venv ]]; then
    rm -rf "$venv"
    say "removed $venv"
  fi
  rmdir "$prefix" 2>/dev/null || true
  say "uninstalled"
  exit 0
fi

# Debian splits venv/ensurepip into python3-venv: a fresh machine may not have it.
if [[ ! -x $venv/bin/python ]] && ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing python3-venv (Debian's venv module)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    say "$python cannot create virtualenvs: run 'sudo apt-get install python3-venv' and retry" >&2
    exit 1
  fi
fi
[[ -x $venv/bin/python ]] || { say "creating virtualenv $venv"; "$python" -m venv "$venv"; }
say "installing forge-tmux into $venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade "$here"
mkdir -p "$bindir"
ln -sfn "$exe" "$bindir/forge-tmux"
say "linked $bindir/forge-tmux"
case ":$PATH:" in *":$bindir:"*) ;; *) say "note: $bindir is not on PATH; add it to use forge-tmux by name" ;; esac
[[ $mode == user ]] || chmod -R a+rX "$prefix"
# The man page comes from the installed program itself, so it describes exactly these options.
mkdir -p "$(dirname "$manpage")"
"$venv/bin/python" -m forge_tmux._reference man >"$manpage.tmp" && mv -f "$manpage.tmp" "$manpage"
chmod 0644 "$manpage"
say "installed the man page $manpage (man forge-tmux)"

say "installing the systemd units ($mode mode)"
set +e
units_out=$("$exe" units install "${unit_args[@]}" ${extras[@]+"${extras[@]}"} --exec "$exe" 2>&1)
units_rc=$?
set -e
printf '%s\n' "$units_out"
if ((units_rc == 0)); then
  say "the sweep timer is enabled; the first sweep ran through systemd:"
  "$exe" units status "${unit_args[@]:0:2}" || true
  exit 0
fi
if grep -q -e 'no running systemd' -e 'systemd is not installed' <<<"$units_out"; then
  say "the sweep timer could NOT be enabled: systemd is not running here (forge-tmux itself is"
  say "installed). Until then, run 'forge-tmux sweep' yourself or from cron."
  say "first sweep:"
  sweep=("$exe" sweep)
  # System units sweep the sockets of the user they run as; so does the first sweep.
  [[ $mode == user || $run_as == root ]] || sweep=(runuser -u "$run_as" -- "${sweep[@]}")
  "${sweep[@]}" || say "the first sweep reported a problem (see above)"
  exit 0
fi
say "installing the units failed (see above)" >&2
exit 1
