"""The MLflow pyfunc wrapper: what ``mlflow.pyfunc.load_model("models:/finsent-sentiment@champion")``
returns. Input: a DataFrame with a ``text`` column (or a list of strings). Output: one row per text
with the class probabilities and the predicted label.

The probabilities are calibrated: the ``model`` artifact is the whole saved model folder, its
``calibration.json`` included, and ``Scorer.from_dir`` applies it (a version logged before calibration
existed has none and serves its raw softmax, as it always did)."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from finsent.vocabulary import LABELS, PROBABILITY_COLUMNS

ENTRY_POINT = Path(__file__).with_name("pyfunc_entry.py")  # what MLflow runs to build the model


def probabilities_frame(probs) -> pd.DataFrame:
    frame = pd.DataFrame(probs, columns=list(PROBABILITY_COLUMNS)).astype("float64")
    frame["label"] = [LABELS[i] for i in probs.argmax(axis=1)] if len(frame) else []
    return frame


class SentimentModel(mlflow.pyfunc.PythonModel):
    """Loads the saved transformers model and its calibration from the ``model`` artifact; no hub access."""

    def load_context(self, context) -> None:
        from finsent.training.score import Scorer

        self.scorer = Scorer.from_dir(context.artifacts["model"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if isinstance(model_input, pd.DataFrame):
            if "text" not in model_input.columns:
                raise ValueError(f"input needs a 'text' column; got {list(model_input.columns)}")
            texts = model_input["text"].astype(str).tolist()
        else:
            texts = [str(t) for t in model_input]
        return probabilities_frame(self.scorer.predict_proba(texts))


def log_model(model_dir: Path, registered_name: str):
    """Log the fine-tuned model as a pyfunc that returns class probabilities; register a version.

    Models-from-code (``pyfunc_entry.py``) rather than a pickled object; the finsent package travels
    with the model so that it loads anywhere MLflow, torch and transformers are installed."""
    import warnings

    import mlflow
    from mlflow.models import infer_signature

    import finsent

    package_dir = Path(finsent.__file__).parent  # the whole package travels with the model
    example_out = probabilities_frame(np.full((1, len(LABELS)), 1.0 / len(LABELS)))
    signature = infer_signature(pd.DataFrame({"text": ["shares rise"]}), example_out)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*input example.*")
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(ENTRY_POINT),
            artifacts={"model": str(model_dir)},
            signature=signature,
            code_paths=[str(package_dir)],
            pip_requirements=["torch", "transformers>=5,<6", "pandas<3", "numpy", "mlflow>=3,<4"],
            registered_model_name=registered_name,
        )
