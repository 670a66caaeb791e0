"""Exceptions that the CLI turns into exit codes; everything else is a bug."""


class UsageError(Exception):
    """Bad usage, bad input or bad configuration: one line on stderr, exit 2."""


class ConfigError(UsageError):
    """The config file is unreadable, not TOML, or has an unknown key or a wrong type."""
