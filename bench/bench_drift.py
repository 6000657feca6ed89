"""How long the drift stage takes on a 10k-row reference and a 10k-row batch.

    PYTHONPATH=src python bench/bench_drift.py [--rows 10000] [--out bench/results/drift_report_time.json]

Reference and current are each drawn (with replacement, different seeds) from TFNS train + valid.
``finsent.drift.run`` then does what monitoring does: sample both sides to ``drift.max_rows`` rows, run
the packaged MiniLM encoder (the champion's architecture; a fine-tuned champion costs the same) over
them for embeddings and predictions, build the Evidently report, and save HTML, JSON and the verdict.
It runs twice: with a cold and with a warm cache of the encoder's outputs on the reference sample (the
reference is the same in every monitoring run of one champion). The JSON records each total, the
stage's own split (embed / report / save), the machine's load average (the CPU may be shared) and the
library versions. The HTML goes to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "DO_NOT_TRACK": "true",
    "OMP_WAIT_POLICY": "PASSIVE",  # spinning OpenMP threads slow everything down on a shared CPU
}.items():
    os.environ.setdefault(_key, _value)

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from finsent.config import load_params  # noqa: E402
from finsent.data.frames import read_dataset  # noqa: E402
from finsent.monitoring import drift  # noqa: E402
from finsent.training.model import load_classifier  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows on each side before sampling")
    parser.add_argument("--params", default=str(REPO / "params.yaml"))
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "drift_report_time.json"))
    args = parser.parse_args(argv)

    params = load_params(args.params)
    pool = pd.concat([read_dataset(REPO / "datasets/tfns/sent_train.csv"), read_dataset(REPO / "datasets/tfns/sent_valid.csv")])
    reference = pool.sample(n=args.rows, replace=True, random_state=1).reset_index(drop=True)
    current = pool.sample(n=args.rows, replace=True, random_state=2).reset_index(drop=True)

    started = time.perf_counter()
    tokenizer, model = load_classifier(params.train.base_model)
    load_s = time.perf_counter() - started
    import evidently  # noqa: F401  (its import alone takes seconds; counted apart)

    import_s = time.perf_counter() - started - load_s
    runs = {}
    with tempfile.TemporaryDirectory() as out_dir:
        cache = Path(out_dir) / "reference_outputs.npz"
        # cold: the reference sample goes through the encoder; warm: it is read from the cache, as in
        # every later monitoring run of the same champion
        for name in ("cold", "warm"):
            started = time.perf_counter()
            summary = drift.run(
                params.drift,
                reference,
                current,
                Path(out_dir) / name,
                model=model.eval(),
                tokenizer=tokenizer,
                reference_cache=cache,
            )
            runs[name] = {"total_s": round(time.perf_counter() - started, 2), "stage_s": summary.seconds}
        html_mb = Path(summary.paths["drift_html"]).stat().st_size / 1e6

    result = {
        "reference_rows_in": args.rows,
        "current_rows_in": args.rows,
        "rows_compared_per_side": summary.reference_rows,
        "drift_params": {"max_rows": params.drift.max_rows, "embedding_plot_rows": params.drift.embedding_plot_rows},
        "encoder": params.train.base_model,
        "cold_cache": runs["cold"],
        "warm_cache": runs["warm"],
        "model_load_s": round(load_s, 2),
        "evidently_import_s": round(import_s, 2),
        "drift_html_mb": round(html_mb, 2),
        "verdict": {"drift": summary.verdict["drift"], "signals_fired": summary.verdict["signals_fired"]},
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "evidently": __import__("evidently").__version__,
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
