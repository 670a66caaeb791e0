"""`forge-tmux units render|install|uninstall|status, doctor` (registered on the shared app when imported)."""
