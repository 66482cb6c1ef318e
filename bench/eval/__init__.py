"""The model evaluation: small coding tasks with hidden tests, run through TARS's real worker for each model.

    .venv/bin/python -m bench.eval [--models M1,M2,...] [--tasks t1,t2,...] [--timeout S] [--json]

bench/eval/catalog.py reads the shipped tasks (bench/eval/tasks/<name>/) and runs a task's hidden tests on a folder;
bench/eval/harness.py runs the tasks through a private Redis and one `start_worker.py` per model, then judges each
task's branch with its hidden tests. docs/EVALUATING_MODELS.md explains what it measures and how to add a task.
"""
