"""fp32 against bf16 scoring on this CPU: what ``service.precision: auto`` gains, and what it changes.

Why: ``finsent api`` scores in bf16 where the CPU multiplies bf16 natively (AVX512-BF16 or AMX), and in
fp32 elsewhere (``finsent.training.model.serving_precision``). Training and batch scoring stay fp32 on
CPU. This bench measures that choice on one trained model, in one run:

- quality on the test set (TFNS validation, 2,388 rows): macro-F1 and accuracy in each precision, the
  share of labels that agree, and the largest and mean change of a probability. Scored twice, in
  passes of ``--agreement-pass`` texts (the service's ``max_batch_size``) and of 256 (batch scoring),
  because a text's padded width, and so its rounding, depends on its pass;
- speed: texts/s of ``Scorer.predict_proba`` at each pass size, in each precision, the median of
  ``--rounds`` rounds of ``--seconds`` each, on texts drawn from the test set.

    python bench/bench_precision.py --model artifacts/runs/<run>/train/model   # a saved finsent model
    python bench/bench_precision.py --root .                                    # the registry's champion

The model must be trained: a random head's probabilities sit near 1/3 each, where any rounding flips a
label, so its agreement says nothing. Run it on an idle machine; the JSON records the CPU's bf16 units.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path

for _key, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "OMP_WAIT_POLICY": "PASSIVE"}.items():
    os.environ.setdefault(_key, _value)

import numpy as np  # noqa: E402
from bench_service import machine_info  # noqa: E402  (this folder is on sys.path when run as a script)
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402

from finsent.data.frames import read_dataset  # noqa: E402
from finsent.training.model import cpu_multiplies_bf16  # noqa: E402
from finsent.training.score import Scorer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TEST_SET = REPO / "datasets" / "tfns" / "sent_valid.csv"
PRECISIONS = ("fp32", "bf16")
PASS_SIZES = (1, 4, 8, 16, 32, 64, 128, 256)


def load_scorer(args: argparse.Namespace) -> tuple[Scorer, str]:
    """The model to measure, and what it is: a saved folder, or the champion of ``--root``'s registry."""
    if args.model:
        return Scorer.from_dir(args.model, device="cpu"), str(args.model)
    from finsent.config import load_params
    from finsent.monitoring.champion import load_champion

    root = Path(args.root).resolve()
    champion = load_champion(load_params(root / "params.yaml"), root)
    return champion.scorer, f"{champion.name} version {champion.version} (champion of {root})"


def with_precision(scorer: Scorer, precision: str, batch_size: int) -> Scorer:
    return Scorer(
        scorer.tokenizer,
        scorer.model,
        max_length=scorer.max_length,
        batch_size=batch_size,
        device="cpu",
        precision=precision,
        calibration=scorer.calibration,
    )


def quality(scorer: Scorer, texts: list[str], labels: np.ndarray, pass_size: int) -> dict:
    probs = {p: with_precision(scorer, p, pass_size).predict_proba(texts) for p in PRECISIONS}
    preds = {p: probs[p].argmax(axis=1) for p in PRECISIONS}
    change = np.abs(probs["bf16"] - probs["fp32"])
    return {
        "pass_size": pass_size,
        **{
            p: {
                "macro_f1": round(float(f1_score(labels, preds[p], average="macro")), 4),
                "accuracy": round(float(accuracy_score(labels, preds[p])), 4),
            }
            for p in PRECISIONS
        },
        "label_agreement": round(float((preds["fp32"] == preds["bf16"]).mean()), 5),
        "labels_changed": int((preds["fp32"] != preds["bf16"]).sum()),
        "max_probability_change": round(float(change.max()), 5),
        "mean_probability_change": round(float(change.mean()), 6),
    }


def speed(scorer: Scorer, texts: list[str], seconds: float, rounds: int, seed: int) -> dict:
    out: dict = {}
    for precision in PRECISIONS:
        rates = {}
        for size in PASS_SIZES:
            timed = with_precision(scorer, precision, size)
            rng = random.Random(seed)
            timed.predict_proba(rng.sample(texts, size))  # first pass at this size: allocations
            per_round = []
            for _ in range(rounds):
                done, started = 0, time.perf_counter()
                while time.perf_counter() - started < seconds:
                    timed.predict_proba(rng.sample(texts, size))
                    done += size
                per_round.append(done / (time.perf_counter() - started))
            rates[str(size)] = round(statistics.median(per_round), 1)
        out[precision] = rates
    out["bf16_over_fp32"] = {size: round(out["bf16"][size] / out["fp32"][size], 2) for size in out["fp32"]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--model", type=Path, help="a saved finsent model folder")
    where.add_argument("--root", type=Path, help="a finsent project: its registry's champion")
    parser.add_argument(
        "--agreement-pass", type=int, default=16, help="pass size of the first quality check (the service's max_batch_size)"
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per round, pass size and precision")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "precision_cpu.json")
    args = parser.parse_args(argv)

    scorer, what = load_scorer(args)
    test = read_dataset(TEST_SET)
    texts, labels = test["text"].astype(str).tolist(), test["label"].to_numpy()
    result = {
        "what": "fp32 against bf16 autocast scoring on CPU, one trained model, the TFNS test set",
        "model": what,
        "test_rows": len(texts),
        "machine": {**machine_info(), "cpu_multiplies_bf16": cpu_multiplies_bf16()},
        "quality": [quality(scorer, texts, labels, size) for size in sorted({args.agreement_pass, 256})],
        "texts_per_s": speed(scorer, texts, args.seconds, args.rounds, args.seed),
        "settings": {"seconds": args.seconds, "rounds": args.rounds, "seed": args.seed, "pass_sizes": list(PASS_SIZES)},
    }
    result["machine"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("model", "quality", "texts_per_s")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
