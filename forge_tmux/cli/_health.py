"""`forge-tmux health, recover` (registered on the shared app when imported)."""
