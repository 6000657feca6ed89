#!/usr/bin/env bash
# The one GPU call of a session (about 7.5 minutes): speed against the HF Trainer and pipeline,
# the augmentation ablation, and a one-GPU torchrun/NCCL smoke run. Every step has a timeout and
# writes its JSON as it goes, so a step cut short still leaves its finished sections in $OUT.
#   python bench/export_encoder.py .carry/minilm; python bench/bench_augment.py prepare   # here, first
#   OUT=/some/dir bash bench/gpu_all.sh                                                    # on the GPU box
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/gpu}
PY=${PYTHON:-python3}
ENC=.carry/minilm
mkdir -p "$OUT"
export PYTHONPATH=src HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=true PYTHONUNBUFFERED=1
{ date -u; nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv; nproc
  $PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"; } 2>&1 | tee "$OUT/env.txt"

timeout 235 $PY bench/bench_speed.py --device cuda --encoder "$ENC" --out "$OUT/gpu_speed.json" \
  --trainer-epochs 3 --score-texts 20000 --pipeline-batch-sizes 32,256 --score-repeats 2 \
  --sweep 512:8e-4:8,1024:1.2e-3:12 --bert-steps 60 --time-budget 200 > "$OUT/gpu_speed.log" 2>&1
echo "speed exit $?" | tee -a "$OUT/env.txt"; tail -25 "$OUT/gpu_speed.log"

timeout 150 $PY bench/bench_augment.py train --data .carry/aug --model "$ENC" --seeds 1 2 3 \
  --settings none all finance eda --out "$OUT/augment.json" > "$OUT/augment.log" 2>&1
echo "augment exit $?" | tee -a "$OUT/env.txt"; tail -6 "$OUT/augment.log"

timeout 60 $PY -m torch.distributed.run --standalone --nproc_per_node 1 -m finsent.training.distributed \
  --train .carry/aug/prepared.csv --out /tmp/ddp_out --set "train.base_model=$ENC" --set train.progress=false \
  --set train.on_cuda='{batch_size: 256, learning_rate: 4.0e-4, epochs: 1.0, pad_to_multiple_of: 8}' > "$OUT/ddp_nccl.log" 2>&1
echo "torchrun exit $?" | tee -a "$OUT/env.txt"; cp /tmp/ddp_out/train_summary.json "$OUT/ddp_nccl_summary.json" 2>/dev/null; tail -3 "$OUT/ddp_nccl.log"
