"""`forge-tmux units render|install|uninstall|status` and `forge-tmux doctor`."""
