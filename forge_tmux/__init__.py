"""forge-tmux: keeps tmux-based agent fleets spawnable."""

__version__ = "0.1.0"
