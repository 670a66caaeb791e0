"""`forge-tmux audit`: find tmux calls that rely on the shared default socket (no `-L`/`-S`).

One crashed default server takes every session started on it down with it, and a `$TMUX` in the
environment silently redirects such a call to another server. Operators run this over their spawn
scripts. It reads text and never runs anything; it is pragmatic rather than a shell parser:
comments are skipped, a tmux word counts only where a command starts, and `-L`/`-S` anywhere in
that command clears it.
"""

from __future__ import annotations

import ast
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from forge_tmux.errors import UsageError
from forge_tmux.paths import display


class FileKind(StrEnum):
    SHELL = "shell"
    PYTHON = "python"
    UNIT = "unit"


@dataclass(frozen=True, slots=True)
class Finding:
    path: str
    line: int
    text: str

    def render(self) -> str:
        return f"{display(self.path)}:{self.line}: {self.text}"


@dataclass(frozen=True, slots=True)
class AuditResult:
    findings: tuple[Finding, ...]
    files_scanned: int
    unreadable: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.findings and not self.unreadable

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "findings": [
                {"path": display(f.path), "line": f.line, "text": f.text} for f in self.findings
            ],
            "files_scanned": self.files_scanned,
            "unreadable": list(self.unreadable),
        }


_SHELL_SUFFIXES = (".sh", ".bash", ".zsh", ".ksh")
_UNIT_SUFFIXES = (".service", ".socket", ".timer", ".path", ".mount", ".target")
_SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__"})
_SHEBANG_SHELL = re.compile(rb"\A#![^\n]*\b(?:ba|da|k|z|a)?sh\b")
_SHEBANG_PYTHON = re.compile(rb"\A#![^\n]*\bpython[0-9.]*\b")

# A tmux word where a command starts: at the start, after a separator (`;`, `|`, `&`, `(`,
# `{`, `` ` ``, `$(`), after `if`/`then`/... or after wrappers that run their arguments as a
# command (`sudo -u bob`, `timeout 5`, `env A=b`). `tmux` may be a path (`/usr/bin/tmux`) and
# quoted. Never `$TMUX`, `tmux.conf`, `/tmp/tmux-1000`, `libtmux`, `command -v tmux`.
_WRAPPER = (
    r"(?:sudo(?:\s+-[ugCDhpr]\s*\S+|\s+-\S+)*"
    r"|timeout(?:\s+-\S+)*\s+[\d.]+[smhd]?"
    r"|nice(?:\s+-n\s*-?\d+|\s+-\S+)*"
    r"|command(?:\s+-p)?"
    r"|(?:exec|env|nohup|setsid|stdbuf|time|xargs|then|do|else|elif|if|while|until|eval|!)"
    r"(?:\s+-\S+)*)"
)
_ASSIGN = r"[A-Za-z_][A-Za-z0-9_]*=(?:\"[^\"]*\"|'[^']*'|\S*)"
_TMUX_CALL = re.compile(
    r"(?:^|[;&|({`]|\$\()\s*"
    rf"(?:(?:{_WRAPPER}|{_ASSIGN})\s+)*"
    r"[\"']?(?:[\w./-]*/)?tmux[\"']?(?=\s|$|[;&|)`])",
    re.MULTILINE,
)
# Where one command ends: the next separator is good enough here.
_COMMAND_END = re.compile(r"&&|\|\||[;|`\n]")
# tmux's global options that take a value (`-L name`, `-Lname`, `-f file` ...).
_VALUED = frozenset("cfLST")
_EXEC_KEY = re.compile(r"^\s*Exec[A-Za-z]*\s*=\s*[-@:+!|]*(.*)$")
# Python calls whose string argument is run by a shell.
_SHELL_CALLS = frozenset(
    {"system", "popen", "getoutput", "getstatusoutput", "run", "call", "check_call",
     "check_output", "Popen", "create_subprocess_shell"}
)  # fmt: skip


def socket_chosen(args: list[str | None]) -> bool:
    """Do tmux's leading options (before the subcommand) choose a socket?

    `None` is an argument that cannot be read (a variable): it may well carry `-L`, so it counts
    as chosen rather than being guessed at. `-V` (version) touches no server at all.
    """
    expect_value = False
    for arg in args:
        if arg is None:
            return True
        if expect_value:
            expect_value = False
            continue
        if not arg.startswith("-") or arg == "-" or arg.startswith("--"):
            return False  # the subcommand: options of tmux itself come before it
        flags = arg[1:]
        for index, flag in enumerate(flags):
            if flag in "LSV":
                return True
            if flag in _VALUED:
                expect_value = index == len(flags) - 1
                break
    return False


def _shell_words(text: str) -> list[str | None]:
    words: list[str | None] = []
    for word in text.split():
        bare = word.strip("\"'")
        words.append(None if bare.startswith("$") else bare)
    return words


def strip_comment(line: str) -> str:
    """The line without a shell comment (`#` at a word start, outside quotes)."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def shell_uses_default_socket(command_text: str) -> bool:
    """Does this shell text run tmux without `-L`/`-S`?"""
    for match in _TMUX_CALL.finditer(command_text):
        rest = command_text[match.end() :]
        end = _COMMAND_END.search(rest)
        if not socket_chosen(_shell_words(rest[: end.start()] if end else rest)):
            return True
    return False


def scan_shell(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of each default-socket tmux call; continued lines are joined."""
    pending: list[str] = []
    first = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            first = number
        line = strip_comment(raw)
        if line.rstrip().endswith("\\"):
            pending.append(line.rstrip()[:-1])
            continue
        pending.append(line)
        joined = " ".join(pending)
        pending = []
        if shell_uses_default_socket(joined):
            yield first, " ".join(joined.split())
    if pending and shell_uses_default_socket(" ".join(pending)):
        yield first, " ".join(" ".join(pending).split())


def scan_unit(text: str) -> Iterator[tuple[int, str]]:
    """Only `Exec*=` lines run commands; `#` and `;` start comments in unit files."""
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.lstrip().startswith(("#", ";")):
            continue
        match = _EXEC_KEY.match(raw)
        if match and shell_uses_default_socket(match.group(1)):
            yield number, raw.strip()


def _is_tmux(node: ast.expr) -> bool:
    """`tmux` or a path to a tmux binary (`/usr/bin/tmux`), not any path ending in tmux
    (`["/run/tmux"]` is a list of directories)."""
    value = _literal(node)
    return value is not None and (value == "tmux" or value.endswith("bin/tmux"))


def _literal(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def scan_python(text: str) -> Iterator[tuple[int, str]]:
    """argv lists/tuples starting with "tmux", shell strings handed to os.system/subprocess,
    and libtmux `Server()` without a socket. Other strings (messages, docstrings) are prose.
    Falls back to the shell rules when the file does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        yield from scan_shell(text)
        return
    lines = text.splitlines()
    uses_libtmux = "libtmux" in text
    hits: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple) and node.elts and _is_tmux(node.elts[0]):
            if not socket_chosen([_literal(e) for e in node.elts[1:]]):
                hits.add(node.lineno)
        elif isinstance(node, ast.Call) and _call_name(node) in _SHELL_CALLS and node.args:
            command = _literal(node.args[0])
            if command is not None and shell_uses_default_socket(command):
                hits.add(node.lineno)
        elif uses_libtmux and isinstance(node, ast.Call) and _is_libtmux_server(node):
            hits.add(node.lineno)
    for number in sorted(hits):
        yield number, lines[number - 1].strip() if number <= len(lines) else ""


def _is_libtmux_server(call: ast.Call) -> bool:
    if _call_name(call) != "Server":
        return False
    keywords = {k.arg for k in call.keywords}
    # `Server(**options)` may carry a socket: do not guess.
    return not keywords & {"socket_name", "socket_path", None}


def file_kind(path: str, head: bytes) -> FileKind | None:
    name = os.path.basename(path)
    if name.endswith(".py") or _SHEBANG_PYTHON.match(head):
        return FileKind.PYTHON
    if name.endswith(_SHELL_SUFFIXES) or _SHEBANG_SHELL.match(head):
        return FileKind.SHELL
    if name.endswith(_UNIT_SUFFIXES):
        return FileKind.UNIT
    return None


_SCANNERS = {FileKind.SHELL: scan_shell, FileKind.PYTHON: scan_python, FileKind.UNIT: scan_unit}


def _candidates(paths: Iterable[str]) -> Iterator[tuple[str, bool]]:
    """(file, named explicitly) for every file under `paths`, in a stable order."""
    for path in paths:
        if not os.path.isdir(path):
            yield path, True
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
            for name in sorted(files):
                yield os.path.join(root, name), False


def audit(paths: Iterable[str]) -> AuditResult:
    """Scan files and directories (recursively). A path that does not exist is a UsageError.

    Files named explicitly are read as shell when their kind is not recognisable; files found
    in a directory are read only when they are shell, Python or unit files.
    """
    paths = list(paths)
    for path in paths:
        if not os.path.lexists(path):
            raise UsageError(f"no such file or directory: {path}")
    findings: list[Finding] = []
    unreadable: list[str] = []
    scanned = 0
    for path, explicit in _candidates(paths):
        if os.path.islink(path) and not explicit:
            continue  # a walk does not follow links (they may point anywhere, or loop)
        try:
            # O_NONBLOCK: opening a FIFO named on the command line must not hang the audit.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                    unreadable.append(f"{display(path)}: not a regular file")
                    continue
                data = fh.read()
        except OSError as exc:
            unreadable.append(f"{display(path)}: {exc.strerror or exc}")
            continue
        kind = file_kind(path, data[:200])
        if kind is None:
            if not explicit:
                continue
            kind = FileKind.SHELL
        scanned += 1
        text = data.decode("utf-8", "replace")
        findings.extend(Finding(path, line, shown) for line, shown in _SCANNERS[kind](text))
    return AuditResult(tuple(findings), scanned, tuple(unreadable))
