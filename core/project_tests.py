"""Finding a project's own test command, so the worker can check the model's word."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable

# Generated and vendored folders: never the project's own code or tests.
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", "build", "dist", "target", "vendor"}

# A bash command the model runs that is a test run (moves the phase to testing).
TEST_COMMAND = re.compile(r"(^|[\s;&|(])(pytest|py\.test|python3? -m (pytest|unittest)|npm (run )?test|yarn test|"
                          r"pnpm test|make (test|check)|go test|cargo test|tox|nox)\b")

PYTEST_NO_TESTS = 5  # pytest's exit code when it collected nothing


def has_file(root: Path, match: Callable[[str], bool], depth: int | None = None, limit: int = 2000) -> bool:
    """Whether a file whose name matches is in root or its folders (down to depth), looking at limit entries at most.

    Breadth first, so a shallow file is found before a deep tree uses up the limit; hidden and SKIP_DIRS folders
    are passed over."""
    seen, layer, level = 0, [root], 0
    while layer and (depth is None or level <= depth):
        below = []
        for folder in layer:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                seen += 1
                if seen > limit:
                    return False
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in SKIP_DIRS and not entry.name.startswith("."):
                        below.append(entry.path)
                elif match(entry.name) and entry.is_file():
                    return True
        layer, level = below, level + 1
    return False


def _is_python_test(name: str) -> bool:
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def detect_test_command(root: Path) -> str | None:
    """The command that runs root's tests, or None when the project has none we know how to run."""
    package = root / "package.json"
    if package.is_file():
        try:
            script = json.loads(package.read_text()).get("scripts", {}).get("test", "")
        except (ValueError, OSError, AttributeError):
            script = ""
        if script and "no test specified" not in script:
            return "npm test"
    makefile = root / "Makefile"
    if makefile.is_file():
        try:
            if re.search(r"^test\s*:", makefile.read_text(errors="replace"), re.M):
                return "make test"
        except OSError:
            pass
    if (root / "Cargo.toml").is_file():
        return "cargo test"
    if (root / "go.mod").is_file():
        return "go test ./..."
    if has_file(root, _is_python_test):
        return "python -m pytest -q"
    return None


def is_test_command(command: str) -> bool:
    return bool(TEST_COMMAND.search(command))
