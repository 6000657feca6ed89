"""Helpers the tests share (not tests themselves): the tiny random BERT, settings under which it runs
the real flows, synthetic registrations into a real MLflow store, throw-away local servers, commands
forked from a process that has imported the heavy libraries (``forked``) and the test run's one Prefect
server (``shared_prefect``).

Importable as ``testkit`` because pyproject.toml puts tests/ on sys.path (``pythonpath``); a child
process that imports it needs tests/ on its PYTHONPATH (see ``TESTS``)."""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
