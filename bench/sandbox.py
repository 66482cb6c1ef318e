"""What the OS sandbox (core/sandbox.py) costs per command the model runs.

    .venv/bin/python -m bench sandbox [--quick]

A task like the worker's: an owner's repository with one commit, the task's worktree from core.git_workspace.prepare,
a TMPDIR, HOME an empty folder (git reads no config of this machine; the caches the policy creates go there), all in
a temporary folder. Each command is `bash -c /bin/true` spawned as core.tools.Workspace.bash spawns it
(subprocess.Popen, its own session, the worker's preexec hook, output piped) and waited for; the sandboxed one adds
the Landlock hook (core.sandbox.Sandbox.preexec) or bwrap's command line. Plain and sandboxed spawns alternate, N each
(full 300, --quick 20), so both see the same machine. Figures, ms:

* per command, Landlock: p50 and p99 of plain and sandboxed, the difference at p50, and the median of the differences
  within each back-to-back pair. Target: <= 5 ms more at p50 (a model turn takes seconds). Without Landlock the
  figure says so and has no verdict;
* per command, bubblewrap: the same for the fallback (informational; skipped without bwrap);
* the ruleset, once per task: building it (the read grants walk the folders on the way to each hidden path), and how
  many rules it holds (informational).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Figure, median, percentile  # noqa: E402
from bench.git import owner_git, private_git  # noqa: E402
from core import git_workspace as gw  # noqa: E402
from core import sandbox  # noqa: E402
from core.tools import _child_setup_hook  # noqa: E402

LANDLOCK_COST = "sandbox cost per command, Landlock (bash -c /bin/true)"
BWRAP_COST = "sandbox cost per command, bubblewrap (bash -c /bin/true)"
RULESET = "sandbox ruleset, built once per task"
NAMES = [LANDLOCK_COST, BWRAP_COST, RULESET]
TARGET_MS = 5.0


def spawn(argv: list[str], cwd: str, env: dict[str, str], preexec) -> float:
    """ms to start and finish one command the way Workspace.bash does."""
    began = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=preexec)
    process.communicate()
    elapsed = (time.perf_counter() - began) * 1000
    if process.returncode:
        raise SystemExit(f"bench: {argv} exited {process.returncode}")
    return elapsed


def compare(box: sandbox.Sandbox, cwd: str, env: dict[str, str], count: int) -> tuple[float, str]:
    """(p50 difference, text): plain and sandboxed /bin/true spawns, interleaved."""
    command = ["/bin/bash", "-c", "/bin/true"]
    plain, boxed = [], []
    for _ in range(count):
        plain.append(spawn(command, cwd, env, _child_setup_hook()))
        boxed.append(spawn(box.argv(command), cwd, env, box.preexec(before=_child_setup_hook())))
    extra = percentile(boxed, 50) - percentile(plain, 50)
    # Each pair ran back to back, so its difference carries less of the machine's noise than two percentiles.
    paired = median([b - p for b, p in zip(boxed, plain, strict=True)])
    return extra, (f"{extra:+.2f} ms at p50 (plain p50 {percentile(plain, 50):.2f} p99 {percentile(plain, 99):.2f}; "
                   f"sandboxed p50 {percentile(boxed, 50):.2f} p99 {percentile(boxed, 99):.2f}; median of the paired "
                   f"differences {paired:+.2f}; {count} spawns each, interleaved)")


def run(quick: bool, out=print) -> list[Figure]:
    count = 20 if quick else 300
    work = Path(tempfile.mkdtemp(prefix="tars-bench-sandbox-"))
    try:
        with private_git(work / "home"):
            owner = work / "owner"
            owner.mkdir()
            (owner / "a.txt").write_text("alpha\n")
            owner_git(owner, "init", "--quiet")
            owner_git(owner, "add", "-A")
            owner_git(owner, "commit", "--quiet", "-m", "the project")
            checkout = gw.prepare("bench", owner, work / "data" / "git")
            env = {"HOME": str(work / "home"), "PATH": "/usr/local/bin:/usr/bin:/bin", "TMPDIR": str(work / "tmp")}
            policy = sandbox.policy_for_checkout(checkout, tmp_dir=work / "tmp", data_dir=work / "data",
                                                 tars_env_file=ROOT / ".env", home=work / "home", env=env)
            support = sandbox.detect()
            found = []
            if support.kind == sandbox.LANDLOCK:
                builds = []
                for _ in range(5 if quick else 20):
                    began = time.perf_counter()
                    sandbox.Sandbox(policy).close()
                    builds.append((time.perf_counter() - began) * 1000)
                rules = len(sandbox.read_grants(policy.real())) + len(policy.real().writable)
                with sandbox.Sandbox(policy) as box:
                    extra, text = compare(box, checkout.path, env, count)
                found += [Figure(LANDLOCK_COST, f"{text}; {support}", f"p50 <= {TARGET_MS:g} ms more",
                                 extra <= TARGET_MS),
                          Figure(RULESET, f"{median(builds):.2f} ms median of {len(builds)} builds, {rules} rules")]
            else:
                found += [Figure(LANDLOCK_COST, f"skipped: no Landlock here (sandbox: {support})"),
                          Figure(RULESET, "skipped: no Landlock here")]
            if shutil.which("bwrap") and sandbox._bwrap_works():
                with sandbox.Sandbox(policy, kind=sandbox.BUBBLEWRAP) as box:
                    found.insert(1, Figure(BWRAP_COST, compare(box, checkout.path, env, count)[1]))
            else:
                found.insert(1, Figure(BWRAP_COST, "skipped: bwrap is not installed or cannot run here"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for figure in found:
        out(figure.line())
    return found


if __name__ == "__main__":
    run("--quick" in sys.argv[1:])
