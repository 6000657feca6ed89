"""Settings under which the tiny random BERT runs the real flows in seconds."""

from pathlib import Path

from testkit.tiny_bert import TINY_RECIPE


def training_overrides(tiny_model_dir: Path, **gate) -> dict:
    return {
        "train": {"base_model": str(tiny_model_dir), "epochs": 1.0, "progress": False, "learning_rate": 5e-3, **TINY_RECIPE},
        "evaluate": {"batch_size": 64},
        # A tiny random model cannot pass the real floors; relax them to exercise the promotion path.
        "gate": {
            "min_macro_f1": 0.0,
            "max_ece": 1.0,
            "behaviour_floors": {"invariance": 0.0, "directional": 0.0, "minimum_functionality": 0.0},
            **gate,
        },
    }
