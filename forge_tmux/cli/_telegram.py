"""`forge-tmux notify, boot, bot` (registered on the shared app when imported)."""
