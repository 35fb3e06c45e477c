#!/usr/bin/env bash
# The README's first command: install what is missing, build the release examples, and run
# the main job (the "Diffusion Models from Scratch" notebook on Fashion-MNIST).
# Extra arguments go to the example, e.g. `bash scripts/main.sh --epochs 1`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release
cmake --build --preset release --target from_scratch
./build/release/examples/from_scratch --out outputs/from_scratch "$@"
