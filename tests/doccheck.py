"""Reading the documentation the way tests/test_docs.py checks it against the code.

Pure text work (no Redis, no processes): fenced blocks, the commands in them, inline
command synopses, Redis key names, setting names, HTTP routes, links and sections.
"""

from __future__ import annotations

import inspect
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.S | re.M)
SHELL_LANGS = {"bash", "sh", "shell", "console"}
PYTHONS = {"python", "python3", ".venv/bin/python"}
OPERATORS = {"&&", "||", "|", ";", "&"}

# What the docs write instead of a real value, and what the checks put there.
ID_PLACEHOLDER = re.compile(r"\b(?:a7f3c1|TASK_ID)\b|<id>|<task_id>|\{task_id\}|\{id\}")
CODE_PLACEHOLDER = re.compile(r"\b(?:6283|CODE)\b|<code>")
KEY_PLACEHOLDER = re.compile(r"<[A-Za-z_-]+>|\{[a-z_]+\}")
KEY_TOKEN = re.compile(r"(?<![\w/.-])(?:rq|tars|task):[A-Za-z0-9_<>{}:.*-]*[A-Za-z0-9_>}*]")
SETTING_LIKE = re.compile(r"(?<![\w$-])[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+(?![\w-]|\.md)")
ROUTE = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE|WS) (/[\w/{}.-]*)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def text(path: Path) -> str:
    return path.read_text()


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def fenced_blocks(doc: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block."""
    return [(m.group(1).lower(), m.group(2)) for m in FENCE.finditer(doc)]


def without_fences(doc: str) -> str:
    return FENCE.sub("", doc)


def section(doc: str, heading: str) -> str:
    """The text under the first heading that starts with `heading`, up to the next heading of its level."""
    match = re.search(rf"^(#+) {re.escape(heading)}.*$", doc, re.M)
    assert match, f"no section {heading!r}"
    level = len(match.group(1))
    rest = doc[match.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[:end.start()] if end else rest


def headings(doc: str) -> list[str]:
    return [m.group(2) for m in re.finditer(r"^(#+) (.+)$", without_fences(doc), re.M)]


@dataclass(frozen=True)
class Command:
    doc: str            # README.md, docs/...
    line: str           # the command line as written (continuations joined, comment cut)
    argv: tuple         # one simple command of it (split at && ; |)
    expect: str = ""    # the comment right after it ("# 200 {...}", "# → a7f3c1")

    @property
    def program(self) -> str:
        return self.argv[0]

    def __str__(self) -> str:
        return " ".join(self.argv)


def _logical_lines(body: str) -> list[tuple[str, str]]:
    """(line, the comment line that follows it) with backslash continuations joined."""
    raw = body.splitlines()
    lines: list[str] = []
    current = ""
    for line in raw:
        if current:
            current += " " + line.strip()
        else:
            current = line.strip()
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        lines.append(current)
        current = ""
    out = []
    for i, line in enumerate(lines):
        if not line or line.startswith("#"):
            continue
        following = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].startswith("#") else ""
        out.append((line, following.lstrip("# ").strip()))
    return out


def split_simple_commands(line: str) -> list[list[str]]:
    """shlex the line (comments dropped) and cut it at shell operators."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="&|;")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    parts: list[list[str]] = [[]]
    for token in lexer:
        if token in OPERATORS:
            parts.append([])
        else:
            parts[-1].append(token)
    return [p for p in parts if p]


ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=")


def commands(paths=DOCS) -> list[Command]:
    """Every simple command in the shell blocks of the docs (NAME=value lines are settings, not commands)."""
    found = []
    for path in paths:
        for lang, body in fenced_blocks(text(path)):
            if lang not in SHELL_LANGS:
                continue  # diagrams are `text`, payloads `json`, unit files `ini` (every fence names one)
            for line, expect in _logical_lines(body):
                if ASSIGNMENT.match(line):
                    continue
                for argv in split_simple_commands(line):
                    found.append(Command(rel(path), line, tuple(argv), expect))
    return found


def assignments(paths=DOCS) -> list[tuple[str, str]]:
    """(doc, NAME) of every NAME=value line in a shell or env block."""
    found = []
    for path in paths:
        for lang, body in fenced_blocks(text(path)):
            if lang in SHELL_LANGS | {"env", "dotenv"}:
                for line, _ in _logical_lines(body):
                    if match := ASSIGNMENT.match(line):
                        found.append((rel(path), match.group(1)))
    return found


SYNOPSIS = re.compile(r"`((?:\.venv/bin/)?python3? (?:main_tars|start_worker)\.py[^`]*)`")
SYNOPSIS_VALUES = {"NAME": "calculator", "N": "5", "TASK_ID": "a7f3c1", "ID": "a7f3c1", "CODE": "6283",
                   '"…"': "'build it'", "…": "x", "T": "'build it'", "P": "calculator"}


def synopses(paths=DOCS) -> list[tuple[str, str, list[str]]]:
    """Inline `python main_tars.py …` usages outside code blocks: (doc, as written, one full argv)."""
    found = []
    for path in paths:
        for match in SYNOPSIS.finditer(without_fences(text(path))):
            written = match.group(1)
            line = written.replace("\\|", "|")
            line = re.sub(r"\[([^\[\]|]*)\|[^\[\]]*\]", r"[\1]", line)  # [a|b] -> [a]
            line = line.replace("[", " ").replace("]", " ")
            tokens = shlex.split(line)
            argv = [SYNOPSIS_VALUES.get(t, t) for t in tokens]
            argv = [shlex.split(a)[0] if a.startswith("'") else a for a in argv]
            found.append((rel(path), written, argv))
    return found


# --- Redis keys -------------------------------------------------------------------------------
def key_tokens(paths=DOCS) -> list[tuple[str, str]]:
    """(doc, key name) of every Redis key named anywhere in the docs."""
    found = []
    for path in paths:
        for token in KEY_TOKEN.findall(text(path)):
            found.append((rel(path), token))
    return found


PLACEHOLDER_PART = r"(?:<[A-Za-z_-]+>|\{[a-z_]+\}|[0-9a-f]{6}|[A-Za-z0-9_.-]+)"
RQ_KEYS = {"rq:queue:tars_programming": "rq:queue:tars_programming", "rq:job:<id>": "rq:job:" + "\0"}


def _template(build, arity: int) -> str:
    """The key `build` makes, with \\0 where its argument goes; a builder that hashes its argument
    (keys.dashboard_login) gets the \\0 where the hash goes."""
    key = build(*["\0"] * arity)
    if "\0" in key:
        return key
    other = build(*["\1"] * arity)
    head = len(os.path.commonprefix([key, other]))
    tail = len(os.path.commonprefix([key[head:][::-1], other[head:][::-1]]))
    return key[:head] + "\0" + key[len(key) - tail:]


def key_patterns() -> dict[str, re.Pattern]:
    """Name in core.keys (or RQ's) -> a regex matching how the docs may write that key."""
    from core import keys

    patterns: dict[str, str] = {}
    for name, value in vars(keys).items():
        if name.startswith("_") or name == "QUEUE_NAME":
            continue
        if isinstance(value, str) and name.isupper():
            patterns[name] = value
        elif inspect.isfunction(value) and value.__module__ == keys.__name__:
            arity = len(inspect.signature(value).parameters)
            patterns[name] = _template(value, arity)
    for name, value in RQ_KEYS.items():
        patterns[f"RQ {name}"] = value
    return {name: re.compile(re.escape(value).replace("\0", PLACEHOLDER_PART) + r"$")
            for name, value in patterns.items()}


def key_matches(token: str) -> list[str]:
    return [name for name, pattern in key_patterns().items() if pattern.match(token)]


# --- everything else --------------------------------------------------------------------------
def setting_like_names(paths=DOCS) -> list[tuple[str, str]]:
    found = []
    for path in paths:
        for name in SETTING_LIKE.findall(text(path)):
            found.append((rel(path), name))
    return found


def table_rows(doc_section: str) -> list[list[str]]:
    rows = []
    for line in doc_section.splitlines():
        line = line.strip()
        if line.startswith("|") and not re.fullmatch(r"\|[\s|:-]+\|", line):
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip("|"))])
    return rows[1:] if rows else rows  # without the header row


def routes_named(doc: str) -> set[tuple[str, str]]:
    return {(method, normal_path(path.rstrip("."))) for method, path in ROUTE.findall(doc)}


def normal_path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def links(paths=DOCS) -> list[tuple[Path, str]]:
    found = []
    for path in paths:
        for target in LINK.findall(without_fences(text(path))):
            if not re.match(r"[a-z]+:", target):
                found.append((path, target))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    heading = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")
