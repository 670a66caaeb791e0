"""docs/configuration.md against the code: every config key with its default, every environment
variable the code reads. A key added, renamed or given another default fails here until the page
follows."""

from __future__ import annotations

import re
import tomllib
from typing import Any, NamedTuple, cast

from forge_tmux.config import BootSession, Config, Profile, parse
from forge_tmux_testing import REPO

DOC = REPO / "docs" / "configuration.md"
# Tables whose entries are named by the operator: their keys come from the entry's record.
ENTRIES: dict[str, tuple[str, type[NamedTuple]]] = {
    "spawn.profiles": ("spawn.profiles.NAME", Profile),
    "boot.sessions": ("boot.sessions[]", BootSession),
}
REQUIRED = "(required)"
NONE = "(none)"


def table(heading: str) -> dict[str, list[str]]:
    """The rows of the first table under `## heading`, by their first cell (backticks off)."""
    text = DOC.read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def code_keys() -> dict[str, Any]:
    """Every key the parser accepts, with its default (REQUIRED for fields without one)."""
    keys: dict[str, Any] = {}

    def walk(record: type[NamedTuple] | NamedTuple, prefix: str) -> None:
        defaults = record._field_defaults
        for name in record._fields:
            key = f"{prefix}{name}"
            if key == "path":  # where the file was read from, not a key
                continue
            if key in ENTRIES:
                entry_prefix, entry = ENTRIES[key]
                walk(entry, entry_prefix + ".")
                continue
            value = defaults.get(name, REQUIRED)
            if isinstance(value, tuple) and hasattr(value, "_fields"):  # a nested NamedTuple
                walk(cast("NamedTuple", value), key + ".")
            else:
                keys[key] = value

    walk(Config, "")
    return keys


def documented_default(cell: str) -> Any:
    if cell in (NONE, REQUIRED):
        return None if cell == NONE else REQUIRED
    return tomllib.loads(f"v = {cell.strip('`')}")["v"]


def test_every_config_key_is_documented_with_its_default() -> None:
    documented = table("Config keys")
    keys = code_keys()
    assert sorted(documented) == sorted(keys)
    for key, default in keys.items():
        expected = list(default) if isinstance(default, tuple) else default
        assert documented_default(documented[key][1]) == expected, key


def test_the_documented_keys_are_the_ones_the_parser_accepts() -> None:
    # Each documented top-level table accepts exactly the documented keys (a typo is an error).
    documented = table("Config keys")
    for key in documented:
        if key.startswith(("spawn.profiles.", "boot.sessions[]")):
            continue
        *tables, name = key.split(".")
        doc: dict[str, Any] = {}
        here = doc
        for t in tables:
            here = here.setdefault(t, {})
        here[name] = object()  # a wrong type: the error must name the key, not call it unknown
        try:
            parse(doc)
        except Exception as exc:
            assert "unknown key" not in str(exc), key


def code_environment() -> set[str]:
    """Names the code reads from the environment (a literal in a lookup, or any FORGE_TMUX_*)."""
    lookup = re.compile(
        r"""(?:environ|env)(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]+)["']|_xdg\("([A-Z][A-Z0-9_]+)\""""
    )
    names: set[str] = set()
    for path in (REPO / "forge_tmux").rglob("*.py"):
        source = path.read_text()
        names.update(a or b for a, b in lookup.findall(source))
        # A name ending in "_" is a prefix (secret.py scrubs FORGE_TMUX_TELEGRAM_*), not a read.
        names.update(re.findall(r"\bFORGE_TMUX_[A-Z0-9_]*[A-Z0-9]\b(?!_)", source))
    return names


def test_every_environment_variable_is_documented() -> None:
    documented = set(table("Environment variables"))
    assert code_environment() <= documented, code_environment() - documented
    # And nothing documented that the code no longer reads.
    assert documented <= code_environment(), documented - code_environment()
