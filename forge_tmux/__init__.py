"""forge-tmux: keeps tmux-based agent fleets spawnable."""

__version__ = "0.2.0"
