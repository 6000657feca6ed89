#!/usr/bin/env bash
# One GPU session for issue 7 (at most 9.5 minutes, by its timeouts; not yet run on a GPU): the recipe ablation on the full TFNS data, 3 seeds,
# decided on dev; then the kept variants together. MiniLM with params.yaml's train.on_cuda settings.
#
#   python bench/export_encoder.py .carry/minilm            # here, once (fp16 safetensors, 44 MiB)
#   PYTHONPATH=src python bench/bench_recipe.py prepare --out .carry/recipe   # here: splits + augmentation
#   OUT=/some/dir bash bench/gpu_recipe.sh                   # on the GPU machine, from the repository root
#
# bench_recipe.py rewrites its JSON after every run and skips finished runs, so a second call with the
# same $OUT/recipe.json goes on where a cut-short one stopped.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/gpu}
PY=${PYTHON:-python3}
ENCODER=${ENCODER:-.carry/minilm}
DATA=${DATA:-.carry/recipe}
mkdir -p "$OUT"
export PYTHONPATH=src HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=true
started=$(date +%s)
{ date -u; nvidia-smi --query-gpu=name,memory.total --format=csv; $PY -c "import torch, transformers; print(torch.__version__, transformers.__version__)"; } 2>&1 | tee "$OUT/recipe_env.txt"
timeout 450 $PY bench/bench_recipe.py run --data "$DATA" --model "$ENCODER" --out "$OUT/recipe.json" 2>&1 | grep -v "LOAD REPORT\|MISSING\|^Key\|^---\|^Notes\|^$\|newly initialized" | tee "$OUT/recipe.log"
timeout 120 $PY bench/bench_recipe.py run --data "$DATA" --model "$ENCODER" --out "$OUT/recipe.json" --combine 2>&1 | grep -v "LOAD REPORT\|MISSING\|^Key\|^---\|^Notes\|^$\|newly initialized" | tee -a "$OUT/recipe.log"
echo "session took $(( $(date +%s) - started )) s" | tee -a "$OUT/recipe_env.txt"
