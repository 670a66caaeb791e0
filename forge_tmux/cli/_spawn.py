"""`forge-tmux spawn, post-boot, audit` (registered on the shared app when imported)."""
