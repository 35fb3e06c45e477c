#!/usr/bin/env bash
# The README's first command: install what is missing, build the release tools, and run the main
# job: train_unconditional with its defaults (the recipe in docs/recipes.md) on Fashion-MNIST,
# about 15 minutes on 2 cores, leaving a diffusers pipeline folder with samples, loss curve and
# metrics in outputs/ddpm-fashion-mnist/.
# Extra arguments go to train_unconditional, e.g. `bash scripts/main.sh --max_train_steps 100`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release
cmake --build --preset release --target train_unconditional sample
./build/release/examples/train_unconditional --output_dir outputs/ddpm-fashion-mnist "$@"
