"""The loop itself, in this process: a scripted model whose answers carry usage numbers, a real project folder."""

from __future__ import annotations

from core.agent import Agent, AgentConfig
from core.model import ScriptedModel, Usage, estimate_cost, text_turn, tool_turn
from core.tools import Workspace

MODEL = "claude-sonnet-5-5"  # $3 in, $15 out per million tokens


def costly(turn, input_tokens: int = 10_000, output_tokens: int = 0):
    """A scripted answer with the usage the API would report for it."""
    turn.usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return turn


def create(path: str):
    return costly(tool_turn("str_replace_based_edit_tool", {"command": "create", "path": path,
                                                            "file_text": f"{path[0]} = 1\n"}))


def test_the_loop_stops_between_steps_once_its_cost_reaches_the_cap(tmp_path):
    # Each answer costs $0.03 (10,000 input tokens): the cap of $0.05 is crossed by the second one.
    model = ScriptedModel([create("a.py"), create("b.py"), costly(text_turn("never asked for"))], name=MODEL)
    agent = Agent(model=model, workspace=Workspace(tmp_path), goal="Write a.py and b.py",
                  config=AgentConfig(max_cost_usd=0.05))
    result = agent.run()

    assert len(model.calls) == 2, "the third answer would spend past the cap: it is never asked for"
    assert result.outcome == "failed"
    assert result.reason.startswith("Stopped at its cost cap of $0.05 (MAX_TASK_COST_USD): it had spent $0.06 in "
                                    "2 iterations")
    assert estimate_cost(MODEL, result.usage) == 0.06
    # The step the cap was crossed in ran to its end: its work is kept.
    assert result.files_changed == ["a.py", "b.py"]
    assert (tmp_path / "b.py").read_text() == "b = 1\n"
    assert len(result.model_seconds) == 2 and all(s >= 0 for s in result.model_seconds)


def test_without_a_cap_the_same_spending_runs_to_the_end(tmp_path):
    model = ScriptedModel([create("a.py"), create("b.py"), create("c.py"), costly(text_turn("Wrote them."))],
                          name=MODEL)
    result = Agent(model=model, workspace=Workspace(tmp_path), goal="Write a.py, b.py and c.py").run()
    assert result.outcome == "complete", result.reason
    assert estimate_cost(MODEL, result.usage) == 0.12
    assert len(result.model_seconds) == result.iterations == 4
