"""The hidden check of a "write tests" task: the project's tests must pass against the reference module and fail
against every mutant of it (a plausible slip each) in _hidden/mutants/.

    python _hidden/check_tests.py roman.py

Each run is on a copy of the checkout (without _hidden/ and .git) whose module is replaced, so the model's own copy
of the module does not matter. Exit 0 only when the tests pass on the reference and catch every mutant.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
NO_TESTS = 5  # pytest's exit code when it collected nothing


def run_tests(module_name, module_source):
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "project"
        shutil.copytree(CHECKOUT, copy, symlinks=True,
                        ignore=shutil.ignore_patterns("_hidden", ".git", "__pycache__", ".pytest_cache"))
        (copy / module_name).write_text(module_source)
        try:
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"], cwd=copy,
                                  capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return None, "timed out after 60 s"
        return done.returncode, done.stdout + done.stderr


def main():
    module_name = sys.argv[1]
    code, output = run_tests(module_name, (HERE / "reference.py").read_text())
    if code == NO_TESTS:
        print("FAIL: the project has no tests pytest collects")
        return 1
    if code != 0:
        print(f"FAIL: the tests do not pass against the real {module_name} (exit {code}):\n{output[-3000:]}")
        return 1
    survivors = []
    for mutant in sorted((HERE / "mutants").iterdir()):
        code, output = run_tests(module_name, mutant.read_text())
        status = "caught" if code not in (0, NO_TESTS) else "MISSED"
        print(f"mutant {mutant.stem}: {status}")
        if status == "MISSED":
            survivors.append(mutant.stem)
    if survivors:
        print(f"FAIL: the tests miss {len(survivors)} mutant(s): {', '.join(survivors)}")
        return 1
    print("PASS: the tests pass on the real module and catch every mutant")
    return 0


if __name__ == "__main__":
    sys.exit(main())
