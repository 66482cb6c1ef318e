"""Compare what is installed with the requirement ranges and the lock (used by .ci/run and .ci/drift).

    python .ci/versions.py covers requirements-dev.txt   every range is met by what is installed (the lock is
                                                         not stale); exit 1 naming the ones that are not
    python .ci/versions.py drift requirements-dev.lock   print each installed version that differs from the lock
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def requirements(path: Path) -> list[Requirement]:
    found = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found += requirements(path.parent / line[3:].strip())
        elif line and not line.startswith("-"):
            found.append(Requirement(line.rstrip("\\").strip()))
    return found


def covers(path: Path) -> int:
    unmet = []
    for req in requirements(path):
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            unmet.append(f"{req} (not installed)")
            continue
        if not req.specifier.contains(installed, prereleases=True):
            unmet.append(f"{req} (installed {installed})")
    for line in unmet:
        print(f"not met: {line}: run `bash .ci/lock` and commit the lock files")
    return 1 if unmet else 0


def drift(lock: Path) -> int:
    pinned = dict(re.findall(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", lock.read_text(), re.M))
    moved = []
    for name, locked in sorted(pinned.items()):
        try:
            now = version(name)
        except PackageNotFoundError:
            continue  # a package for another platform
        if now != locked:
            moved.append(f"{canonicalize_name(name)} {locked} -> {now}")
    print("newest allowed versions that differ from the lock: " + (", ".join(moved) if moved else "none"))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("covers", "drift"):
        sys.exit(__doc__)
    sys.exit({"covers": covers, "drift": drift}[sys.argv[1]](Path(sys.argv[2])))
