"""Jinja templates of forge-tmux's systemd units, shipped inside the package as
`forge_tmux.units` (see pyproject.toml) and rendered by `forge_tmux.systemd_units`."""
