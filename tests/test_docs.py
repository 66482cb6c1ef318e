"""The documents a new user follows must match the code."""

from __future__ import annotations

import json
from pathlib import Path

from communication.api import ConfirmationBody
from communication.notifier import EVENT_TYPES

ROOT = Path(__file__).resolve().parent.parent
SETUP = (ROOT / "docs" / "N8N_BACKGROUND_TASKS_SETUP.md").read_text()


def test_the_n8n_workflow_imports_and_points_at_tars():
    workflow = json.loads((ROOT / "docs" / "n8n_tars_workflow.json").read_text())
    nodes = {node["name"]: node for node in workflow["nodes"]}
    for source, outputs in workflow["connections"].items():
        assert source in nodes
        assert all(link["node"] in nodes for branch in outputs["main"] for link in branch)
    hook = nodes["TARS progress"]
    assert hook["type"] == "n8n-nodes-base.webhook"
    assert hook["parameters"]["authentication"] == "headerAuth" and hook["parameters"]["httpMethod"] == "POST"
    assert f"/webhook/{hook['parameters']['path']}" in SETUP
    back = nodes["Send the code to TARS"]
    assert back["parameters"]["url"].endswith("/webhook/background-confirmation")
    body = back["parameters"]["jsonBody"]
    assert all(f"{field}:" in body for field in ConfirmationBody.model_fields)  # task_id and code
    assert back["credentials"] == hook["credentials"]  # one shared secret, both directions
    ask = nodes["Ask for the code"]
    assert ask["parameters"]["operation"] == "sendAndWait"
    assert "confirmation_required" in json.dumps(nodes["Needs a code?"])


def test_the_setup_guide_names_every_event_type_and_answer():
    for kind in EVENT_TYPES:
        assert f"`{kind}`" in SETUP
    for status in ("200", "401", "403", "404", "409", "413", "422"):
        assert f"| {status}" in SETUP
    assert "X-TARS-Webhook-Secret" in SETUP and "/webhook-test/" in SETUP
