"""The import that every registered finsent model makes: ``from finsent.serving import SentimentModel``.

Models registered before the package was regrouped (finsent 0.1) ran an entry file with that line. A
model carries its own copy of finsent, but MLflow only puts that copy on ``sys.path``: in a process
that has already imported finsent (the CLI, the monitor, a service) the import resolves against the
running package. This name keeps pointing at the current pyfunc, whose artifacts format has not
changed, so every older version still loads and scores (``tests/integration/test_legacy_model.py``).
Newer models import ``finsent.registry.pyfunc`` directly.
"""

from finsent.registry.pyfunc import SentimentModel, probabilities_frame

__all__ = ["SentimentModel", "probabilities_frame"]
