"""Finance behaviour suite (CheckList style): minimum functionality, invariance and directional tests.

The suite ships with the package (``resources/behaviour_suite.yaml``). ``run_suite`` scores every
sentence of the suite in one call of any ``predict_proba(texts) -> (n, 3)`` function and returns the
pass rate of each test type with the failing cases, which the promotion gate holds against its floors.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import yaml

from finsent.errors import FinsentError
from finsent.vocabulary import LABELS

TEST_TYPES: tuple[str, ...] = ("minimum_functionality", "invariance", "directional")
SUITE_RESOURCE = "resources/behaviour_suite.yaml"

PredictProba = Callable[[list[str]], np.ndarray]


class BehaviourError(FinsentError, ValueError):
    """The suite file is malformed, or a predictor returned something that is not (n, 3) probabilities."""


BEHAVIOUR_FILE = "behaviour.json"  # written by the evaluate stage beside metrics.json


@dataclass(frozen=True)
class MinimumFunctionalityCase:
    text: str
    label: int


@dataclass(frozen=True)
class InvarianceCase:
    name: str
    template: str
    texts: tuple[str, ...]  # the template with each filler in its slot


@dataclass(frozen=True)
class DirectionalCase:
    name: str
    base: str
    changed: str
    direction: int  # +1: P(bullish) - P(bearish) must rise from base to changed; -1: fall


@dataclass(frozen=True)
class BehaviourSuite:
    minimum_functionality: tuple[MinimumFunctionalityCase, ...]
    invariance: tuple[InvarianceCase, ...]
    directional: tuple[DirectionalCase, ...]
    directional_min_shift: float = 0.05  # a lean that barely moves is not a model reading the change

    def texts(self) -> list[str]:
        """Every distinct sentence of the suite, in a stable order."""
        seen: dict[str, None] = {}
        for mft_case in self.minimum_functionality:
            seen[mft_case.text] = None
        for inv_case in self.invariance:
            seen.update(dict.fromkeys(inv_case.texts))
        for dir_case in self.directional:
            seen[dir_case.base] = seen[dir_case.changed] = None
        return list(seen)


@dataclass
class BehaviourResult:
    pass_rates: dict[str, float]  # per test type, in [0, 1]
    counts: dict[str, dict[str, int]]  # per test type: {"passed": .., "total": ..}
    class_pass_rates: dict[str, float]  # minimum functionality per class
    failures: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # a few per type

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BehaviourResult:
        return cls(**raw)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise BehaviourError(message)


def _slot(template: str, where: str) -> str:
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    _require(len(names) == 1 and names[0].isidentifier(), f"{where}: template needs exactly one {{slot}}, got {template!r}")
    return names[0]


def parse_suite(raw: Any) -> BehaviourSuite:
    """Build a suite from its YAML mapping, with a specific error for each malformed part."""
    _require(isinstance(raw, dict), "behaviour suite: expected a mapping at the top level")
    unknown = sorted(set(raw) - {"version", "fillers", "directional_min_shift", *TEST_TYPES})
    _require(not unknown, f"behaviour suite: unknown top-level key(s) {unknown}")
    missing = [t for t in TEST_TYPES if not raw.get(t)]
    _require(not missing, f"behaviour suite: missing or empty section(s) {missing}")
    shared = raw.get("fillers") or {}
    _require(isinstance(shared, dict), "behaviour suite: fillers must map a name to a list")

    mft_raw = raw["minimum_functionality"]
    _require(
        isinstance(mft_raw, dict) and set(mft_raw) == set(LABELS),
        f"behaviour suite: minimum_functionality needs exactly the classes {list(LABELS)}",
    )
    mft = []
    for label, sentences in mft_raw.items():
        _require(
            isinstance(sentences, list) and len(sentences) > 0 and all(isinstance(s, str) and s.strip() for s in sentences),
            f"behaviour suite: minimum_functionality.{label} must be a non-empty list of sentences",
        )
        mft += [MinimumFunctionalityCase(text=s, label=LABELS.index(label)) for s in sentences]
    repeated = sorted({c.text for c in mft if sum(d.text == c.text for d in mft) > 1})
    _require(not repeated, f"behaviour suite: minimum_functionality sentence(s) listed twice: {repeated}")

    invariance = []
    for i, case in enumerate(raw["invariance"]):
        where = f"behaviour suite: invariance[{i}]"
        _require(isinstance(case, dict) and isinstance(case.get("template"), str), f"{where}: needs a template")
        slot = _slot(case["template"], where)
        fillers = case.get("fillers")
        if isinstance(fillers, str):
            _require(fillers in shared, f"{where}: no shared filler list {fillers!r}; known: {sorted(shared)}")
            fillers = shared[fillers]
        _require(
            isinstance(fillers, list) and len(fillers) >= 2 and all(isinstance(f, str) for f in fillers),
            f"{where}: fillers must be a shared list name or a list of at least two strings",
        )
        texts = tuple(case["template"].replace("{" + slot + "}", f) for f in fillers)
        invariance.append(InvarianceCase(name=str(case.get("name", case["template"])), template=case["template"], texts=texts))

    min_shift = raw.get("directional_min_shift", 0.05)
    _require(
        isinstance(min_shift, (int, float)) and 0 <= min_shift < 2,
        f"behaviour suite: directional_min_shift must be a number in [0, 2), got {min_shift!r}",
    )
    directional = []
    for i, case in enumerate(raw["directional"]):
        where = f"behaviour suite: directional[{i}]"
        _require(
            isinstance(case, dict) and isinstance(case.get("base"), str) and isinstance(case.get("changed"), str),
            f"{where}: needs base and changed sentences",
        )
        _require(case.get("direction") in ("up", "down"), f"{where}: direction must be up or down")
        _require(case["base"] != case["changed"], f"{where}: base and changed are the same sentence")
        directional.append(
            DirectionalCase(
                name=str(case.get("name", case["base"])),
                base=case["base"],
                changed=case["changed"],
                direction=1 if case["direction"] == "up" else -1,
            )
        )
    return BehaviourSuite(tuple(mft), tuple(invariance), tuple(directional), float(min_shift))


def load_suite() -> BehaviourSuite:
    """The suite shipped with the package."""
    text = resources.files("finsent").joinpath(SUITE_RESOURCE).read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BehaviourError(f"behaviour suite is not valid YAML: {exc}") from exc
    return parse_suite(raw)


def _score(predict_proba: PredictProba, texts: list[str]) -> dict[str, np.ndarray]:
    probs = np.asarray(predict_proba(texts), dtype=np.float64)
    _require(
        probs.shape == (len(texts), len(LABELS)),
        f"predict_proba returned shape {probs.shape}, expected ({len(texts)}, {len(LABELS)})",
    )
    _require(bool(np.isfinite(probs).all()), "predict_proba returned non-finite probabilities")
    return dict(zip(texts, probs))


def _rate(passed: int, total: int) -> float:
    return passed / total if total else 0.0


def run_suite(predict_proba: PredictProba, suite: BehaviourSuite | None = None, max_failures: int = 10) -> BehaviourResult:
    """Run ``suite`` (default: the packaged one) against ``predict_proba``; one scoring call in all."""
    suite = suite or load_suite()
    probs = _score(predict_proba, suite.texts())
    bullish, bearish = LABELS.index("bullish"), LABELS.index("bearish")
    failures: dict[str, list[dict[str, Any]]] = {t: [] for t in TEST_TYPES}
    counts: dict[str, dict[str, int]] = {}

    def record(kind: str, ok_flags: list[bool], failing: list[dict[str, Any]]) -> None:
        counts[kind] = {"passed": int(sum(ok_flags)), "total": len(ok_flags)}
        failures[kind] = failing[:max_failures]

    mft_ok, mft_fail = [], []
    per_class: dict[str, list[bool]] = {name: [] for name in LABELS}
    for case in suite.minimum_functionality:
        predicted = int(probs[case.text].argmax())
        ok = predicted == case.label
        mft_ok.append(ok)
        per_class[LABELS[case.label]].append(ok)
        if not ok:
            mft_fail.append({"text": case.text, "expected": LABELS[case.label], "predicted": LABELS[predicted]})
    record("minimum_functionality", mft_ok, mft_fail)

    inv_ok, inv_fail = [], []
    for inv_case in suite.invariance:
        predictions = [LABELS[int(probs[t].argmax())] for t in inv_case.texts]
        ok = len(set(predictions)) == 1
        inv_ok.append(ok)
        if not ok:
            inv_fail.append({"name": inv_case.name, "predictions": dict(zip(inv_case.texts, predictions))})
    record("invariance", inv_ok, inv_fail)

    dir_ok, dir_fail = [], []
    for dir_case in suite.directional:
        # It must move the right way by at least the suite's minimum: a near-constant model fails.
        lean_base = probs[dir_case.base][bullish] - probs[dir_case.base][bearish]
        lean_changed = probs[dir_case.changed][bullish] - probs[dir_case.changed][bearish]
        shift = float(lean_changed - lean_base)
        ok = shift * dir_case.direction >= suite.directional_min_shift and shift * dir_case.direction > 0
        dir_ok.append(ok)
        if not ok:
            direction = "up" if dir_case.direction > 0 else "down"
            dir_fail.append(
                {
                    "name": dir_case.name,
                    "base": dir_case.base,
                    "changed": dir_case.changed,
                    "direction": direction,
                    "shift": round(shift, 4),
                }
            )
    record("directional", dir_ok, dir_fail)

    return BehaviourResult(
        pass_rates={t: _rate(counts[t]["passed"], counts[t]["total"]) for t in TEST_TYPES},
        counts=counts,
        class_pass_rates={name: _rate(sum(flags), len(flags)) for name, flags in per_class.items()},
        failures=failures,
    )
