"""The command the DDP tests launch: ``torchrun`` with two CPU processes of ``finsent.training.distributed``."""

from __future__ import annotations

import sys
from pathlib import Path


def two_process_training(folder: Path, **more_files: str) -> list[str]:
    """Train on ``folder``'s params.yaml, train.csv and dev.csv into ``folder/ddp``; ``more_files`` adds
    options that name files in ``folder`` (``unlabelled="news.csv"`` -> ``--unlabelled folder/news.csv``)."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    files = {"params": "params.yaml", "train": "train.csv", "dev": "dev.csv", **more_files, "out": "ddp"}
    options = [part for option, name in files.items() for part in (f"--{option}", str(folder / name))]
    return [*launcher, "-m", "finsent.training.distributed", *options]
