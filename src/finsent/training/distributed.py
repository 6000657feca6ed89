"""Data-parallel training under ``torchrun``: one process per GPU (NCCL), or per CPU process (gloo).

    torchrun --nproc_per_node 4 -m finsent.training.distributed --train artifacts/pipeline/augmented/train.csv \\
        --dev artifacts/pipeline/data/dev.csv --out artifacts/pipeline/train [--params params.yaml] [--set train.epochs=3] \\
        [--unlabelled artifacts/pipeline/data/unlabelled.csv]

Every process runs the same ``finsent.train.run``: ``fit`` gives each process its share of every
global batch (``train.batch_size``, or ``train.on_cuda.batch_size`` on GPUs, is the batch of all
processes together) and DistributedDataParallel averages the gradients, so the result matches one
process training on the whole batch. Every process scores the whole dev split (``--dev``), so all
make the same early-stopping and selection decisions. Only rank 0 reports, and writes the model,
checkpoints and summary. LoRA, FGM and TAPT run as on one process; self-training's pseudo-labels are
rank 0's, sent to every process (``finsent.training.train.pseudo_labels_of``).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import asdict

import torch
import torch.distributed as dist


def backend_for(device: str) -> str:
    """NCCL between GPUs, gloo between CPU processes."""
    if device == "cpu" or not torch.cuda.is_available():
        return "gloo"
    return "nccl"


def main(argv: Sequence[str] | None = None) -> None:
    from finsent.config import load_params, parse_overrides, replace
    from finsent.env import apply_quiet_offline

    parser = argparse.ArgumentParser(prog="python -m finsent.training.distributed", description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="prepared training CSV (text, label)")
    parser.add_argument("--dev", help="the dev split (text, label): selects the weights, may stop early")
    parser.add_argument("--out", required=True, help="output folder: model/, train_summary.json")
    parser.add_argument("--unlabelled", help="the unlabelled pool (text): read by TAPT and self-training when on")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a parameter")
    args = parser.parse_args(argv)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise SystemExit("finsent.distributed: run it under torchrun (RANK and WORLD_SIZE are not set)")

    apply_quiet_offline()
    from finsent.training import train

    p = replace(load_params(args.params), **parse_overrides(args.set or [])).train
    backend = backend_for(p.device)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    try:
        log = print if dist.get_rank() == 0 else (lambda _: None)
        summary = train.run(p, args.train, args.out, log=log, dev_path=args.dev, unlabelled_path=args.unlabelled)
        dist.barrier()  # the others wait until rank 0 has written the model
        if dist.get_rank() == 0:
            print(json.dumps(asdict(summary), indent=2))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
