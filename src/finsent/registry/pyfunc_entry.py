"""MLflow models-from-code entry: MLflow runs this file to build the pyfunc model (no pickling).

Not imported by the library; ``registry.log_model`` hands its path to MLflow.
"""

from mlflow.models import set_model

from finsent.registry.pyfunc import SentimentModel

set_model(SentimentModel())
