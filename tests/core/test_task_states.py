"""The one vocabulary of a task's life: every ending has one outcome, one phase, one event kind and one label."""
from __future__ import annotations

import re
from pathlib import Path

from core import task_states
from core.exceptions import Cancelled, LimitsExceeded, Submitted, TaskFailed, TimeExceeded

ROOT = Path(__file__).resolve().parents[2]


def test_each_outcome_has_one_phase_label_and_verb_and_each_ending_phase_maps_back():
    for outcome in task_states.OUTCOMES:
        phase = task_states.ENDING_PHASE[outcome]
        assert task_states.outcome_of(phase) == outcome
        assert phase in task_states.EVENT_KINDS and phase in task_states.ENDING_KINDS
        assert task_states.LABEL[outcome] and task_states.VERB[outcome]
    assert task_states.outcome_of("coding") is None and task_states.outcome_of(None) is None


def test_a_failed_task_ends_in_the_phase_the_original_workflow_keys_on():
    assert task_states.ENDING_PHASE[task_states.FAILED] == "error"


def test_the_loop_endings_carry_outcomes_of_the_vocabulary():
    for ending in (Submitted, LimitsExceeded, TimeExceeded, Cancelled, TaskFailed):
        assert ending.outcome in task_states.OUTCOMES


def test_the_dashboard_page_keeps_no_copy_of_the_names():
    """app.js reads them from the page (served by the dashboard); a literal list there would drift."""
    script = (ROOT / "communication/static/app.js").read_text()
    for name in ("awaiting_confirmation", "confirmation_required", "checkpoint_failed", "command_result"):
        assert f'"{name}"' not in script, name
    assert "tars-vocabulary" in script


def test_no_product_module_spells_an_outcome_label_map_of_its_own():
    labels = re.compile(r'"Timed out"')
    offenders = [str(path.relative_to(ROOT)) for folder in ("core", "communication") for path in
                 (ROOT / folder).glob("*.py") if path.name != "task_states.py" and labels.search(path.read_text())]
    assert not offenders, f"outcome labels belong to core/task_states.py: {offenders}"


def test_a_cost_with_an_unpriced_model_never_reads_as_a_confident_figure():
    from core.task_states import cost_text, models_text
    assert cost_text(0.4213) == "$0.4213" and cost_text(None) == "$0.00"
    assert cost_text(0.42, unknown=True) == "$0.42 + unknown" and cost_text(0.0, unknown=True) == "unknown"
    assert models_text({"anthropic:claude-sonnet-5-5": 2, "openai:gpt-5.1": 7}) == \
        "openai:gpt-5.1 (7 turns), anthropic:claude-sonnet-5-5 (2)"
