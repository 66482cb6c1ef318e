"""Checks against real third-party servers, run by hand (`python -m tests.integration.<name>`), never collected by
pytest: they install software and take minutes."""
