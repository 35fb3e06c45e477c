#!/usr/bin/env bash
# The command-line tools as a person runs them: train_unconditional trains, checkpoints, resumes
# bit for bit and leaves a diffusers pipeline folder; sample draws from it; image folders train;
# wrong flags exit 2 with one line naming the flag; missing or bad files exit 1 naming the file.
# Usage: test_tools.sh BIN_DIR WORK_DIR
set -uo pipefail
bin=$1
work=$2
source "$(dirname "${BASH_SOURCE[0]}")/tool_checks.sh"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1

# A small UNet so that the run takes seconds.
cat > tiny.json <<'JSON'
{"_class_name": "UNet2DModel", "in_channels": 1, "out_channels": 1, "block_out_channels": [8, 16],
 "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
 "layers_per_block": 1, "norm_num_groups": 4, "attention_head_dim": 4}
JSON
train=("$bin/train_unconditional" --model_config tiny.json --train_batch_size 8 --eval_batch_size 4
       --ddpm_num_inference_steps 2 --lr_warmup_steps 2 --time_budget 0)

# 1. Four steps straight, and two + resume + two: the same weights, bit for bit.
expect "train 4 steps" "${train[@]}" --max_train_steps 4 --checkpointing_steps 2 --output_dir straight
for f in model_index.json unet/config.json unet/diffusion_pytorch_model.safetensors scheduler/scheduler_config.json \
         README.md samples.png loss.svg metrics.csv metrics.jsonl checkpoint-2 checkpoint-4; do
  [[ -e straight/$f ]] && pass "wrote $f" || fail "missing straight/$f"
done
grep -q "pipeline_tag: unconditional-image-generation" straight/README.md && grep -q "library_name: diffusers" straight/README.md \
  && pass "model card front matter" || fail "model card front matter"
expect "train 2 steps" "${train[@]}" --max_train_steps 4 --checkpointing_steps 2 --output_dir resumed
rm -rf resumed/checkpoint-4 resumed/unet  # as if killed after the checkpoint at step 2
expect "resume from latest" "${train[@]}" --max_train_steps 4 --checkpointing_steps 2 --output_dir resumed \
  --resume_from_checkpoint latest
grep -q "Resumed from step 2" out.log && pass "resumed at step 2" || fail "did not resume at step 2: $(cat out.log)"
cmp -s straight/unet/diffusion_pytorch_model.safetensors resumed/unet/diffusion_pytorch_model.safetensors \
  && pass "resume is bit for bit" || fail "resumed weights differ from the straight run"
# The rows of steps 3 and 4 the first run logged after the checkpoint are logged once, not twice.
[[ $(cut -d, -f1 resumed/metrics.csv | tr '\n' ' ') == "step 1 2 3 4 " ]] && pass "metrics.csv continues after resume" \
  || fail "metrics.csv: $(cat resumed/metrics.csv)"
[[ $(grep -o '"step":[0-9]*' resumed/metrics.jsonl | tr '\n' ' ') == '"step":1 "step":2 "step":3 "step":4 ' ]] \
  && pass "metrics.jsonl continues after resume" || fail "metrics.jsonl: $(cat resumed/metrics.jsonl)"

# A resume with other schedule flags says what it does; one it cannot continue is refused.
cp -r straight longer
expect "resume for more steps" "${train[@]}" --max_train_steps 6 --checkpointing_steps 2 --output_dir longer \
  --resume_from_checkpoint latest
grep -q -- "--max_train_steps 6 differs from the checkpoint's 4; the LR schedule is rebuilt for 6 steps" err.log \
  && pass "a longer resume says the schedule is rebuilt" || fail "longer resume: $(cat err.log)"
[[ $(cut -d, -f1 longer/metrics.csv | tr '\n' ' ') == "step 1 2 3 4 5 6 " ]] && pass "the longer run logged steps 5 and 6" \
  || fail "longer metrics.csv: $(cat longer/metrics.csv)"
expect "resume with another warmup, fewer steps" "${train[@]}" --max_train_steps 5 --lr_warmup_steps 1 --output_dir longer \
  --resume_from_checkpoint latest
grep -q -- "--lr_warmup_steps 1 differs from the checkpoint's 2" err.log && grep -q "nothing left to train" err.log \
  && pass "another warmup and a finished run are reported" || fail "another warmup: $(cat err.log)"
expect_error "resume with another schedule" 1 "resume with --lr_scheduler cosine" "${train[@]}" --lr_scheduler linear \
  --output_dir longer --resume_from_checkpoint latest
expect_error "resume with another batch size" 1 "resume with --train_batch_size 8" "${train[@]}" --train_batch_size 4 \
  --output_dir longer --resume_from_checkpoint latest
expect_error "resume with another seed" 1 "resume with --seed 0" "${train[@]}" --seed 5 \
  --output_dir longer --resume_from_checkpoint latest

# 1b. Class-conditional with label dropout: resume bit for bit, the class grid, the model card.
cond=("${train[@]}" --num_class_embeds 10 --conditioning_dropout_prob 0.5 --checkpointing_steps 2)
expect "class-conditional, 4 steps" "${cond[@]}" --max_train_steps 4 --output_dir cond_straight
expect "class-conditional, 2 steps" "${cond[@]}" --max_train_steps 2 --output_dir cond_resumed
expect "class-conditional, resume for 2 more" "${cond[@]}" --max_train_steps 4 --output_dir cond_resumed \
  --resume_from_checkpoint latest
cmp -s cond_straight/unet/diffusion_pytorch_model.safetensors cond_resumed/unet/diffusion_pytorch_model.safetensors \
  && pass "class-conditional resume is bit for bit" || fail "class-conditional resumed weights differ"
[[ -e cond_straight/class_grid.png ]] && pass "wrote class_grid.png" || fail "no class_grid.png"
grep -q '"num_class_embeds": 11' cond_straight/unet/config.json && pass "num_class_embeds is classes + 1" \
  || fail "unet config: $(cat cond_straight/unet/config.json)"
grep -q 'label \*\*10\*\* means "no class"' cond_straight/README.md && grep -q "class_labels=torch.cat" cond_straight/README.md \
  && pass "the model card names the no-class label and shows guided sampling" || fail "model card classes"
expect "sample every class with guidance" "$bin/sample" --pipeline cond_straight --class_label all --batch_size 2 \
  --guidance_scale 2 --num_inference_steps 2 --output_dir cond_drawn
[[ $(tr '\n' ' ' < cond_drawn/labels.txt) == "0 0 1 1 2 2 3 3 4 4 5 5 6 6 7 7 8 8 9 9 " && -e cond_drawn/image_0019.png ]] \
  && pass "--class_label all: two of each class" || fail "labels.txt: $(cat cond_drawn/labels.txt)"
expect_error "a class outside the embedding" 1 "class label 11 is outside \[0, 11)" "$bin/sample" --pipeline cond_straight \
  --class_label 11 --num_inference_steps 2 --output_dir cond_bad
expect_error "guidance for an unconditional model" 1 "needs a class-conditional UNet" "$bin/sample" --pipeline straight \
  --guidance_scale 3 --num_inference_steps 2 --output_dir cond_bad
expect_error "classes that do not match the data" 1 "does not match the data, which has 10 classes" "${train[@]}" \
  --num_class_embeds 7 --output_dir cond_bad
expect_error "a dropout probability outside [0, 1]" 2 "--conditioning_dropout_prob" "${train[@]}" \
  --num_class_embeds 10 --conditioning_dropout_prob 2 --output_dir cond_bad
expect_error "resume without the labels" 1 "resume: --num_class_embeds none differs from the checkpoint's 10" \
  "${train[@]}" --max_train_steps 6 --output_dir cond_resumed --resume_from_checkpoint latest

# 2. sample: files, chunks, every scheduler, initial noise.
expect "sample 5 images in chunks of 2" "$bin/sample" --pipeline straight --batch_size 5 --chunk_size 2 \
  --num_inference_steps 3 --output_dir drawn
for f in grid.png image_0000.png image_0004.png samples.npy; do
  [[ -e drawn/$f ]] && pass "sample wrote $f" || fail "sample did not write $f"
done
[[ $(head -c 128 drawn/samples.npy | grep -ac "(5, 1, 28, 28)") -eq 1 ]] && pass "samples.npy is 5x1x28x28" || fail "samples.npy shape"
for s in ddpm ddim pndm euler euler_ancestral heun dpmpp_2m unipc; do
  expect "sample with $s" "$bin/sample" --pipeline straight --scheduler "$s" --batch_size 1 --num_inference_steps 4 --output_dir "s_$s"
done
expect "sample with DDIM eta" "$bin/sample" --pipeline straight --scheduler ddim --eta 1 --batch_size 2 --num_inference_steps 2 --output_dir eta
expect "sample from given noise" "$bin/sample" --pipeline straight --init_noise drawn/samples.npy --num_inference_steps 2 --output_dir from_noise
[[ -e from_noise/image_0004.png && ! -e from_noise/image_0005.png ]] && pass "init noise sets the batch" || fail "init noise batch"

# 3. An image folder (the PNGs just drawn), resized, flipped, center-cropped.
mkdir -p folder/a && cp drawn/image_000*.png folder/a/
sed 's/"in_channels": 1, "out_channels": 1/"in_channels": 3, "out_channels": 3/' tiny.json > tiny_rgb.json
expect "train on an image folder" "${train[@]}" --model_config tiny_rgb.json --train_data_dir folder --resolution 16 \
  --random_flip --center_crop --train_batch_size 2 --max_train_steps 2 --output_dir from_folder
grep -q '"sample_size": 16' from_folder/unet/config.json && grep -q '"in_channels": 3' from_folder/unet/config.json \
  && pass "image folder model is 3x16x16" || fail "image folder model config"
mkdir -p classes/boots classes/coats && cp drawn/image_000[0-2].png classes/boots/ && cp drawn/image_000[3-4].png classes/coats/
expect "train on an image folder's classes" "${train[@]}" --model_config tiny_rgb.json --train_data_dir classes \
  --resolution 16 --num_class_embeds 2 --train_batch_size 2 --max_train_steps 2 --output_dir from_classes
grep -q '"num_class_embeds": 3' from_classes/unet/config.json && grep -q "| 0 | boots |" from_classes/README.md \
  && grep -q "| 2 | (no class) |" from_classes/README.md && pass "sub-folders are the classes, 2 is \"no class\"" \
  || fail "image folder classes: $(cat from_classes/unet/config.json)"
expect_error "labels for a folder without sub-folders" 1 "no classes (an image folder without sub-folders)" \
  "${train[@]}" --model_config tiny_rgb.json --train_data_dir folder/a --resolution 16 --num_class_embeds 1 \
  --output_dir cond_bad

# 4. Errors: flags exit 2, files exit 1, one line each.
expect_error "unknown flag" 2 "--bogus" "$bin/train_unconditional" --bogus 1
expect_error "bad number" 2 "--learning_rate" "$bin/train_unconditional" --learning_rate fast
expect_error "bad choice" 2 "squaredcos_cap_v2" "$bin/train_unconditional" --ddpm_beta_schedule cosine
expect_error "missing value" 2 "--output_dir" "$bin/train_unconditional" --output_dir
expect_error "missing data folder" 1 "no_such_folder" "$bin/train_unconditional" --train_data_dir no_such_folder
mkdir -p empty_folder
expect_error "empty image folder" 1 "empty_folder" "$bin/train_unconditional" --train_data_dir empty_folder
expect_error "bad model config" 1 "nope.json" "$bin/train_unconditional" --model_config nope.json
sed 's/"norm_num_groups": 4/"norm_num_groups": 32/' tiny.json > groups.json
expect_error "a module error names the model config" 1 "'groups.json': GroupNorm: 8 channels" "$bin/train_unconditional" \
  --model_config groups.json
expect_error "sample without --pipeline" 2 "--pipeline" "$bin/sample"
expect_error "unreadable pipeline" 1 "model_index.json" "$bin/sample" --pipeline no_such_pipeline
expect_error "bad scheduler" 2 "dpmpp_2m" "$bin/sample" --pipeline straight --scheduler dpm
expect_error "eta for another scheduler" 2 "--eta" "$bin/sample" --pipeline straight --scheduler euler --eta 1
expect_error "class label for an unconditional model" 1 "not class-conditional" "$bin/sample" --pipeline straight --class_label 3
"$bin/train_unconditional" --help > help.txt 2>&1 && grep -q -- "--time_budget" help.txt && grep -q "(default: 28)" help.txt \
  && pass "--help lists flags with defaults" || fail "--help"

report
