#!/usr/bin/env bash
# train_unconditional under mpirun (docs/distributed.md): 2 processes with batches of 4 train the
# model one process trains with batches of 8 (also with gradient accumulation); a 2-process run
# resumes bit for bit; rank 0 alone writes; a resume on another number of processes is refused;
# an error stops every rank with its message.
# Usage: test_tools_mpi.sh BIN_DIR MPIEXEC COMPARE_WEIGHTS WORK_DIR [MPIEXEC FLAGS...]
set -uo pipefail
bin=$1
mpiexec=$2
compare=$3
work=$4
shift 4
source "$(dirname "${BASH_SOURCE[0]}")/tool_checks.sh"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
two=("$mpiexec" -np 2 "$@")

# A small UNet without attention: attention's to_k.bias has a gradient that is zero in exact
# arithmetic, and Adam turns its rounding noise into full-size steps that differ between runs.
cat > tiny.json <<'JSON'
{"_class_name": "UNet2DModel", "in_channels": 1, "out_channels": 1, "block_out_channels": [8, 16],
 "down_block_types": ["DownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "UpBlock2D"],
 "layers_per_block": 1, "norm_num_groups": 4, "add_attention": false}
JSON
train=("$bin/train_unconditional" --model_config tiny.json --eval_batch_size 4 --ddpm_num_inference_steps 2
       --lr_warmup_steps 2 --time_budget 0 --checkpointing_steps 2)
weights=unet/diffusion_pytorch_model.safetensors
# float32 rounding after 4 AdamW steps: the two runs sum the batch's gradients in another order.
tolerance=1e-4
same_model() {  # same_model WHAT DIR_A DIR_B
  for f in $weights checkpoint-4/model.safetensors checkpoint-4/ema.safetensors; do
    if "$compare" "$2/$f" "$3/$f" $tolerance > cmp.log 2>&1; then pass "$1: $f ($(cat cmp.log))"
    else fail "$1: $f: $(cat cmp.log)"; fi
  done
}

# 1. 2 processes x batch 4 = 1 process x batch 8.
expect "1 process, batch 8" "${train[@]}" --train_batch_size 8 --max_train_steps 4 --output_dir one
expect "2 processes, batch 4" "${two[@]}" "${train[@]}" --train_batch_size 4 --max_train_steps 4 --output_dir two
grep -q "4 steps of 8 images" out.log && grep -q "Data-parallel on 2 processes" out.log \
  && pass "the global batch is 2 x 4" || fail "global batch: $(cat out.log)"
[[ $(grep -c "^Trained 4 steps" out.log) -eq 1 ]] && pass "rank 0 alone reports" || fail "reports: $(cat out.log)"
[[ $(cut -d, -f1 two/metrics.csv | tr '\n' ' ') == "step 1 2 3 4 " ]] && pass "one metrics row per step" \
  || fail "metrics.csv: $(cat two/metrics.csv)"
[[ -e two/model_index.json && -e two/samples.png && -e two/checkpoint-2 ]] && pass "rank 0 wrote the folder" \
  || fail "missing files in two/"
grep -q '"dropout.rank1"' two/checkpoint-4/trainer_state.json && pass "the checkpoint holds rank 1's generator" \
  || fail "no rank 1 generator in the checkpoint"
same_model "2 x 4 = 1 x 8" one two

# 2. The same with gradient accumulation: 2 x 2 x 2 micro-batches = 1 x 4 x 2.
expect "1 process, batch 4, 2 micro-batches" "${train[@]}" --train_batch_size 4 --gradient_accumulation_steps 2 \
  --max_train_steps 4 --output_dir one_accumulated
expect "2 processes, batch 2, 2 micro-batches" "${two[@]}" "${train[@]}" --train_batch_size 2 \
  --gradient_accumulation_steps 2 --max_train_steps 4 --output_dir two_accumulated
same_model "2 x 2 x 2 = 1 x 4 x 2" one_accumulated two_accumulated

# 3. Resume on 2 processes: 4 steps straight = 2 + resume + 2, bit for bit.
expect "2 processes, 2 steps" "${two[@]}" "${train[@]}" --train_batch_size 4 --max_train_steps 2 --output_dir resumed
expect "2 processes, resume for 2 more" "${two[@]}" "${train[@]}" --train_batch_size 4 --max_train_steps 4 \
  --output_dir resumed --resume_from_checkpoint latest
grep -q "Resumed from step 2" out.log && pass "resumed at step 2" || fail "did not resume: $(cat out.log)"
for f in $weights checkpoint-4/model.safetensors checkpoint-4/optimizer.safetensors checkpoint-4/ema.safetensors; do
  cmp -s "two/$f" "resumed/$f" && pass "resume is bit for bit: $f" || fail "resumed $f differs from the straight run"
done

# 4. Another number of processes is refused, by name.
"${train[@]}" --train_batch_size 4 --max_train_steps 4 --output_dir resumed --resume_from_checkpoint checkpoint-2 \
  > out.log 2> err.log
rc=$?
[[ $rc -eq 1 ]] && grep -q "run on 2 processes, this run is on one process.*resume with mpirun -np 2" err.log \
  && pass "a 2-process checkpoint on one process is refused" || fail "resume on 1 (exit $rc): $(cat err.log)"
"${two[@]}" "${train[@]}" --train_batch_size 4 --max_train_steps 4 --output_dir one --resume_from_checkpoint checkpoint-2 \
  > out.log 2> err.log
grep -q "rank [01]: resume: .* run on one process, this run is on 2 processes.*resume without mpirun" err.log \
  && pass "a 1-process checkpoint on 2 processes is refused" || fail "resume on 2: $(cat err.log)"

# 5. Errors stop every rank with the message (ctest's timeout catches a hang); --help ends cleanly.
"${two[@]}" "$bin/train_unconditional" --help > out.log 2> err.log
rc=$?
[[ $rc -eq 0 ]] && grep -q -- "--num_class_embeds" out.log && pass "--help under mpirun exits 0" \
  || fail "--help under mpirun (exit $rc): $(cat err.log)"
"${two[@]}" "${train[@]}" --model_config nope.json --output_dir failed > out.log 2> err.log
rc=$?
[[ $rc -ne 0 ]] && grep -q "rank [01]: .*nope.json" err.log && pass "a missing file stops both ranks" \
  || fail "missing file (exit $rc): $(cat err.log)"
"${two[@]}" "${train[@]}" --learning_rate fast > out.log 2> err.log
rc=$?
[[ $rc -ne 0 && $(grep -c -- "--learning_rate" err.log) -eq 1 ]] && pass "a bad flag is reported once" \
  || fail "bad flag (exit $rc): $(cat err.log)"

report
