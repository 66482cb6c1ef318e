"""Finding a project's own test command, so the worker can check the model's word."""

from __future__ import annotations

import json
import re
from pathlib import Path

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", "build", "dist"}

# A bash command the model runs that is a test run (moves the phase to testing).
TEST_COMMAND = re.compile(r"(^|[\s;&|(])(pytest|py\.test|python3? -m (pytest|unittest)|npm (run )?test|yarn test|"
                          r"pnpm test|make (test|check)|go test|cargo test|tox|nox)\b")

PYTEST_NO_TESTS = 5  # pytest's exit code when it collected nothing


def _has_python_tests(root: Path, limit: int = 2000) -> bool:
    seen = 0
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > limit:
                return False
            if entry.is_dir() and not entry.is_symlink():
                if entry.name not in SKIP_DIRS and not entry.name.startswith("."):
                    stack.append(entry)
            elif entry.suffix == ".py" and (entry.name.startswith("test_") or entry.name.endswith("_test.py")):
                return True
    return False


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
    if _has_python_tests(root):
        return "python -m pytest -q"
    return None


def is_test_command(command: str) -> bool:
    return bool(TEST_COMMAND.search(command))
