"""The MLflow pyfunc wrapper: what ``mlflow.pyfunc.load_model("models:/finsent-sentiment@champion")``
returns. Input: a DataFrame with a ``text`` column (or a list of strings). Output: one row per text
with the class probabilities and the predicted label."""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd

from finsent.config import LABELS

PROBABILITY_COLUMNS = [f"p_{name}" for name in LABELS]


def probabilities_frame(probs) -> pd.DataFrame:
    frame = pd.DataFrame(probs, columns=PROBABILITY_COLUMNS).astype("float64")
    frame["label"] = [LABELS[i] for i in probs.argmax(axis=1)] if len(frame) else []
    return frame


class SentimentModel(mlflow.pyfunc.PythonModel):
    """Loads the saved transformers model from the ``model`` artifact; no hub access."""

    def load_context(self, context) -> None:
        from finsent.score import Scorer

        self.scorer = Scorer.from_dir(context.artifacts["model"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if isinstance(model_input, pd.DataFrame):
            if "text" not in model_input.columns:
                raise ValueError(f"input needs a 'text' column; got {list(model_input.columns)}")
            texts = model_input["text"].astype(str).tolist()
        else:
            texts = [str(t) for t in model_input]
        return probabilities_frame(self.scorer.predict_proba(texts))
