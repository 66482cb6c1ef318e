"""The coding loop: Claude ⇄ tools on one project, until done or a limit is hit.

The model and the workspace are passed in; everything else reaches the outside
world through one LoopHooks object (events, the command gate, checkpoints, live
figures, scrubbing, the cancel flag, the log). Ending states are exceptions from
core.exceptions carrying the final message; `run()` turns them into an AgentResult.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field

from core.defaults import STUCK_DONE_REPEATS, STUCK_REPEATS, TEST_OUTPUT_TO_MODEL
from core import syntax_check
from core.exceptions import (Cancelled, CostExceeded, Interrupted, LimitsExceeded, ModelError, Submitted, TaskEnded,
                             TaskFailed,
                             TimeExceeded, WorkspaceUnusable)
from core.model import INVALID_ARGUMENTS, Model, Usage
from core.project_tests import PYTEST_NO_TESTS, detect_test_command, is_test_command
from core.task_states import CONTEXT_CLEARED, MODEL_FALLBACK, usd
from core.tools import BASH_TOOL, EDITOR_TOOL, ToolResult, Workspace

log = logging.getLogger("tars.agent")

CACHE = {"type": "ephemeral"}
DISK_TROUBLE = ("No space left on device", "Read-only file system", "Disk quota exceeded")  # a command's stderr
# What differs between two runs of the same failing tests: durations ("in 0.03s", "12 ms") and object addresses.
RUN_NOISE = re.compile(r"\b\d+(?:\.\d+)?\s*(?:s|ms|sec|seconds)\b|0x[0-9a-fA-F]+")

SYSTEM_PROMPT = """You are TARS's background programmer. You work alone, without a human watching, on one \
project directory: {root}

Reach the goal the owner gave, then stop. Work in small steps: look at what is there, write the code, \
write or update tests, run them, fix what fails.
- Use the bash tool for commands and the str_replace_based_edit_tool for reading and editing files. \
Paths are relative to the project directory; you cannot leave it.
- Every bash command starts a fresh shell in the project directory (cd does not persist) and is killed \
after {command_timeout:g} seconds: never start servers or anything that waits for input.
- Destructive commands (rm, git reset --hard, chmod, kill, sudo, ...) need the owner's confirmation and \
may be refused: prefer the editor tool and safer alternatives.
- Your work is saved automatically: after every step that changes files the worker commits a checkpoint, \
and the owner can roll back to any of them. Never undo work with git reset, git checkout or git stash; \
fix forward instead.
- When the goal is met and the tests pass, answer with a short summary of what you built (plain text, \
no tool call). The worker then runs the project's tests itself; if they fail you will be told.
"""


@dataclass
class AgentConfig:
    max_iterations: int = 50
    max_runtime_seconds: float = 900.0
    command_timeout: float = 120.0
    stuck_repeats: int = STUCK_REPEATS
    stuck_done_repeats: int = STUCK_DONE_REPEATS  # "done" answers in a row against the same failing tests
    max_paused_seconds: float = 300.0  # time waiting for the owner's code that does not count as runtime
    max_cost_usd: float | None = None  # MAX_TASK_COST_USD: the estimated cost at which the loop stops


@dataclass
class AgentResult:
    outcome: str
    reason: str
    summary: str
    iterations: int
    files_changed: list[str]
    tests_passed: bool | None
    test_command: str | None
    usage: Usage
    duration_seconds: float
    transient: bool = False  # ended by something outside the task that may pass (core/exceptions.Interrupted)
    model_seconds: list[float] = field(default_factory=list)  # how long each model call took, in order
    models: dict[str, int] = field(default_factory=dict)  # the turns each model served (`provider:model`)


class LoopHooks:
    """What the worker does around the loop, in one object. This base records nothing and lets every command run (a
    loop run by hand, a benchmark); the worker's (core/background_worker.WorkerHooks) records, gates, checkpoints."""

    def __init__(self, log: logging.LoggerAdapter | logging.Logger = log):
        self.cancelled = threading.Event()  # set from another thread: the loop stops at its next check
        self.log = log

    def event(self, kind: str, message: str, **data) -> None:
        """A progress event (core/task_states.EVENT_KINDS): a sentence for the owner, and its details."""

    def gate(self, command: str) -> str | None:
        """Before each bash command: None lets it run, a sentence refuses it (the model reads it)."""
        return None

    def after_step(self, progress: str, tests_passed: bool) -> None:
        """After a step that ran a command or changed a file (not one that only read): the worker's checkpoint."""

    def after_turn(self, usage: Usage, files_changed: list[str], models: dict[str, int]) -> None:
        """After each model answer: the usage so far, the files the editor changed so far and the turns each model
        served (live figures)."""

    def hold(self) -> float:
        """At each step boundary (before a model call or a command): wait while the owner has paused the work, and
        return the seconds waited (none of it counts as runtime). A cancel ends the wait: the loop then stops."""
        return 0.0

    def scrub(self, text: str) -> str:
        """Tool output before the model sees it: known secret values removed."""
        return text

    def changed_files(self, edited: list[str]) -> list[str]:
        """The files the task changed so far, relative to the project (the syntax check before the tests reads
        them): here those the editor changed (edited); the worker's are its branch's, so commands' writes count."""
        return edited


@dataclass
class Agent:
    model: Model
    workspace: Workspace
    goal: str
    config: AgentConfig = field(default_factory=AgentConfig)
    hooks: LoopHooks = field(default_factory=LoopHooks)
    # One sentence for the first message: the environment commands run in (core/project_env.ProjectEnv.for_model).
    environment: str = ""

    def __post_init__(self):
        self.messages: list[dict] = []
        self.usage = Usage()
        self.model_seconds: list[float] = []
        self.models: dict[str, int] = {}
        self.iterations = 0
        self.files_changed: set[str] = set()
        self.phase = "planning"
        self.tests_passed: bool | None = None
        self.test_command: str | None = None
        self._started = time.monotonic()
        self._paused = 0.0  # off the runtime clock: waiting for the owner's code, or held by the owner's pause
        # How much of it the runtime may skip: RQ's hard job timeout leaves room for max_paused_seconds of waiting
        # for codes; a hold stops that timeout too (WorkerHooks.hold), so its whole time is added here.
        self._pause_allowance = self.config.max_paused_seconds
        self._last_actions: list[str] = []
        self._failed_claims: list[str] = []  # the worker's failing test output after each "done", in a row
        self._syntax_told = ""  # the syntax errors the model was last told of (the same again: taken as meant)
        self._step_touched = False  # this step ran a command or changed a file
        self._step_tests: bool | None = None  # a test command ran in this step: did they all pass?
        self.system = [{"type": "text", "cache_control": CACHE, "text": SYSTEM_PROMPT.format(
            root=self.workspace.root, command_timeout=self.config.command_timeout)}]
        self.tools = [BASH_TOOL, dict(EDITOR_TOOL)]

    # --- the loop -----------------------------------------------------------
    def run(self) -> AgentResult:
        self.messages = [{"role": "user", "content": [{"type": "text", "text": self._first_message()}]}]
        self.progress_text = "Planning the work"
        self.hooks.event("planning", self.progress_text, phase="planning")
        try:
            while True:
                self.step()
        except TaskEnded as ended:
            return self._result(ended)

    def step(self) -> None:
        self._check_limits()
        self.iterations += 1
        asked = time.monotonic()
        try:
            turn = self.model.query(system=self.system, tools=self.tools, messages=self._with_cache_breakpoint())
        except ModelError as exc:
            if self.hooks.cancelled.is_set():  # the cancel cut the call short on purpose
                raise Cancelled("The task was cancelled.") from exc
            raise (Interrupted if exc.transient else TaskFailed)(str(exc)) from exc
        self.model_seconds.append(round(time.monotonic() - asked, 3))
        self._told(turn)
        if self.hooks.cancelled.is_set():
            raise Cancelled("The task was cancelled.")
        self.usage.add(turn.usage)
        self.hooks.after_turn(self.usage, sorted(self.files_changed), self.models)
        self.messages.append({"role": "assistant", "content": turn.content or [{"type": "text", "text": "..."}]})
        if turn.tool_uses:
            self._step_touched, self._step_tests = False, None
            results = [self._run_tool(block) for block in turn.tool_uses]
            self._check_stuck(turn.tool_uses, results)
            self.messages.append({"role": "user", "content": results})
            if self._step_touched:
                self.hooks.after_step(self.progress_text, bool(self._step_tests))
                self.hooks.after_turn(self.usage, sorted(self.files_changed), self.models)
        elif turn.stop_reason == "max_tokens":
            self._say("Your reply was cut off by the token limit. Continue, in smaller steps.")
        else:
            self._verify(turn.text)

    # --- limits and ending ---------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self._started - min(self._paused, self._pause_allowance)

    def _hold(self) -> None:
        """A step boundary: wait here while the owner has paused the task or every worker (core/pause.py)."""
        held = self.hooks.hold()
        self._paused += held
        self._pause_allowance += held

    def _check_limits(self, before: str = "model call") -> None:
        self._hold()
        if self.hooks.cancelled.is_set():
            raise Cancelled("The task was cancelled.")
        if self.elapsed() >= self.config.max_runtime_seconds:
            raise TimeExceeded(f"The runtime limit of {self.config.max_runtime_seconds / 60:g} minutes was reached "
                               f"after {self.iterations} iterations; files are left as they are.")
        if before == "model call" and self.iterations >= self.config.max_iterations:
            raise LimitsExceeded(f"The iteration limit of {self.config.max_iterations} model turns was reached; "
                                 f"files are left as they are.")
        cap = self.config.max_cost_usd
        if before == "model call" and cap is not None and (spent := self.cost()) >= cap:
            raise CostExceeded(f"Stopped at its cost cap of {usd(cap)} (MAX_TASK_COST_USD): it had spent "
                               f"{usd(spent)} in {self.iterations} iterations; files are left as they are.")

    def cost(self) -> float:
        """The estimated USD of the model's answers so far (each priced by the model that gave it)."""
        return self.usage.cost_usd

    def _told(self, turn) -> None:
        """Who answered, and what the owner should hear of it: a model taking over, older output cleared."""
        served_by = turn.model or self.model.name
        self.models[served_by] = self.models.get(served_by, 0) + 1
        for sentence in turn.fallbacks:
            self.hooks.log.warning("%s", sentence)
            self.hooks.event(MODEL_FALLBACK, sentence, model=served_by)
        if turn.context_note:
            self.hooks.log.info("%s", turn.context_note)
            self.hooks.event(CONTEXT_CLEARED, turn.context_note, model=served_by)

    def _check_stuck(self, tool_uses: list[dict], results: list[dict]) -> None:
        action = json.dumps([[b["name"], b["input"]] for b in tool_uses], sort_keys=True) + json.dumps(
            [r["content"] for r in results])
        self._last_actions = (self._last_actions + [action])[-self.config.stuck_repeats:]
        if len(self._last_actions) == self.config.stuck_repeats and len(set(self._last_actions)) == 1:
            raise LimitsExceeded(f"The model was stuck: it repeated the same action with the same result "
                                 f"{self.config.stuck_repeats} times in a row.")

    def _check_stuck_claims(self, command: str, output: str) -> None:
        """The model said it was done and the tests failed: the same failure after each of the last N such answers
        means its fixes do not reach it (the loop would alternate "Running the tests / Tests failed" to the limit)."""
        self._failed_claims = (self._failed_claims + [RUN_NOISE.sub("#", output)])[-self.config.stuck_done_repeats:]
        if len(self._failed_claims) == self.config.stuck_done_repeats and len(set(self._failed_claims)) == 1:
            last = next((line.strip() for line in reversed(output.splitlines())  # the summary, not '[exit code 1]'
                         if line.strip() and not line.strip().startswith("[")), "")
            raise LimitsExceeded(f"The model was stuck: it said it was done {self.config.stuck_done_repeats} times "
                                 f"in a row, but `{command}` failed the same way each time"
                                 + (f" ({last[:200]})." if last else "."))

    def _verify(self, summary: str) -> None:
        """The model says it is done: believe it only if the files it changed parse and the project's tests pass."""
        if self._syntax_errors_told():
            return
        command = detect_test_command(self.workspace.root)
        if command is None:
            raise Submitted("Done; the project has no tests to run.", summary)
        self._check_limits(before="command")
        self.test_command = command
        self.set_phase("testing", f"Running the project's tests: {command}")
        result = self._bash(command)
        if result.exit_code == 0 or (result.exit_code == PYTEST_NO_TESTS and "pytest" in command):
            self.tests_passed = True if result.exit_code == 0 else None
            raise Submitted(f"Done; `{command}` passed." if result.exit_code == 0 else "Done; no tests collected.",
                            summary)
        self.tests_passed = False
        self._check_stuck_claims(command, result.output)
        self.set_phase("fixing", "Tests failed: fixing")
        output = result.output[-TEST_OUTPUT_TO_MODEL:]
        self._say(f"I ran `{command}` and it failed:\n\n{output}\n\nFix the code (or the tests, if they are wrong) "
                  f"so that it passes, then give your summary again.")

    def _syntax_errors_told(self) -> bool:
        """Before any test run, the files the task changed are checked for syntax (core/syntax_check.py); errors go
        back to the model instead of the tests. The very same errors after its next "done" are taken as meant (a
        fixture that is invalid on purpose), and the tests run."""
        self._check_limits(before="command")
        self.progress("Checking the changed files' syntax")
        errors = syntax_check.check(self.workspace, self.hooks.changed_files(sorted(self.files_changed)), self._bash)
        report = "\n".join(str(error) for error in errors)
        if not errors or report == self._syntax_told:
            return False
        self._syntax_told = report
        self.set_phase("fixing", f"Syntax errors in {syntax_check.files_text(errors)}: fixing")
        self._say(f"Before running the tests I checked the files you changed, and they do not parse:\n\n{report}"
                  f"\n\nFix them, then give your summary again. (If a file is invalid on purpose, such as a test "
                  f"fixture, say so and give your summary again: the tests will then run.)")
        return True

    def _result(self, ended: TaskEnded) -> AgentResult:
        self.hooks.log.info("ended %s: %s", ended.outcome, ended.reason)
        return AgentResult(outcome=ended.outcome, reason=ended.reason, summary=ended.summary,
                           iterations=self.iterations, files_changed=sorted(self.files_changed),
                           tests_passed=self.tests_passed, test_command=self.test_command, usage=self.usage,
                           duration_seconds=round(time.monotonic() - self._started, 3), transient=ended.transient,
                           model_seconds=list(self.model_seconds), models=dict(self.models))

    # --- tools -----------------------------------------------------------------
    def _run_tool(self, block: dict) -> dict:
        name, tool_input = block["name"], block.get("input") or {}
        verb = "Editing"
        if INVALID_ARGUMENTS in tool_input:  # an OpenAI-compatible model's arguments that were not a JSON object
            return {"type": "tool_result", "tool_use_id": block["id"], "is_error": True,
                    "content": f"The arguments of this {name} call were not a valid JSON object: "
                               f"{tool_input[INVALID_ARGUMENTS][:300]!r}. Call it again with a JSON object."}
        if name == "bash" and isinstance(tool_input.get("command"), str):
            result = self._command(tool_input["command"])
        else:
            if name == "str_replace_based_edit_tool":
                verb = {"view": "Viewing", "create": "Creating", "str_replace": "Editing",
                        "insert": "Editing"}.get(tool_input.get("command"), "Editing")
                self.progress(f"{verb} {tool_input.get('path', '')}".strip())
            result = self.workspace.run_tool(name, tool_input)
            for path in result.files_changed:
                self.hooks.event("file_edit", f"{verb} {path}", path=path)
        self._note_changes(result)
        self._check_workspace(result)
        return {"type": "tool_result", "tool_use_id": block["id"], "content": self.hooks.scrub(result.output),
                "is_error": result.is_error}

    def _check_workspace(self, result: ToolResult) -> None:
        """A full or read-only disk ends the task with the fix named; retrying edits would only loop."""
        if getattr(result, "unusable", False):
            raise TaskFailed(result.output)
        if any(sign in result.output for sign in DISK_TROUBLE):
            probe = getattr(self.workspace, "probe_writable", None)
            try:
                if probe:
                    probe()
            except WorkspaceUnusable as exc:
                raise TaskFailed(str(exc)) from None

    def _command(self, command: str) -> ToolResult:
        self._check_limits(before="command")
        if is_test_command(command):
            self.set_phase("testing", f"Running: {command[:80]}")
        else:
            self.progress(f"Running: {command[:80]}")
        self.hooks.event("command", f"Running: {command[:200]}", command=command)
        asked = time.monotonic()
        refusal = self.hooks.gate(command)
        self._paused += time.monotonic() - asked  # the owner's thinking time is not the task's runtime
        if refusal:
            self.hooks.log.info("command refused: %s", command)
            return ToolResult(output=refusal, is_error=True)
        self._check_limits(before="command")
        result = self._bash(command)
        self._step_touched = True
        if is_test_command(command):
            self._step_tests = result.exit_code == 0 and self._step_tests is not False
        self.hooks.event("command_result", f"exit {result.exit_code}: {result.output[:200]}", command=command,
                         exit_code=result.exit_code)
        if is_test_command(command) and result.exit_code not in (0, None):
            self.set_phase("fixing", "Tests failed: fixing")
        return result

    def _bash(self, command: str) -> ToolResult:
        # A command may not outlive the task's runtime limit.
        remaining = self.config.max_runtime_seconds - self.elapsed()
        self.workspace.command_timeout = max(1.0, min(self.config.command_timeout, remaining))
        self.hooks.log.info("running: %s", command)
        result = self.workspace.bash(command)
        self.hooks.log.info("exit %s%s", result.exit_code, " (timed out)" if result.timed_out else "")
        if self.hooks.cancelled.is_set():
            raise Cancelled("The task was cancelled.")
        return result

    def _note_changes(self, result: ToolResult) -> None:
        if result.files_changed:
            self._step_touched = True
            self.files_changed.update(result.files_changed)
            if self.phase == "planning" or self.phase == "testing":
                self.set_phase("coding", self.progress_text)

    # --- talking to the model and to the owner -------------------------------
    def _first_message(self) -> str:
        listing = self.workspace.run_tool("str_replace_based_edit_tool", {"command": "view", "path": "."}).output
        environment = f"\n\n{self.environment}" if self.environment else ""
        return f"Goal: {self.goal}\n\nThe project directory {self.workspace.root} contains:\n{listing}{environment}"

    def _say(self, text: str) -> None:
        self.messages.append({"role": "user", "content": [{"type": "text", "text": text}]})

    def _with_cache_breakpoint(self) -> list[dict]:
        """The history with one cache breakpoint on the newest block, so the next turn reads all before it
        from cache (the system prompt carries the other breakpoint, covering tools + system)."""
        messages = self.messages[:-1] + [dict(self.messages[-1])]
        last = messages[-1]
        last["content"] = [*last["content"][:-1], {**last["content"][-1], "cache_control": CACHE}]
        return messages

    progress_text = ""

    def progress(self, text: str) -> None:
        self.progress_text = text
        self.hooks.log.info("progress: %s", text)
        self.hooks.event("progress", text)

    def set_phase(self, phase: str, text: str) -> None:
        changed = phase != self.phase
        self.phase = phase
        self.progress_text = text
        if changed:
            self.hooks.log.info("phase %s: %s", phase, text)
        self.hooks.event("phase" if changed else "progress", text, phase=phase)
