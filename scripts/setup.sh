#!/usr/bin/env bash
# Installs the Debian 12 packages diffuse needs to build, test and run its examples.
# Idempotent: installs only what is missing. Runs apt-get as root (or through sudo).
set -euo pipefail

packages=(
  g++ cmake make pkg-config ccache
  libeigen3-dev libxtensor-dev libxsimd-dev xtl-dev
  nlohmann-json3-dev zlib1g-dev libstb-dev
  catch2 libbenchmark-dev
  dataset-fashion-mnist
  # the fuzz tests (ctest label fuzz): clang with libFuzzer, ASan/UBSan runtimes and OpenMP
  clang-16 libfuzzer-16-dev libclang-rt-16-dev libomp-16-dev
  # the format check (test format): Debian 12's clang-format, version 14
  clang-format
  # data-parallel training across processes (include/diffuse/distributed/, ctest label mpi)
  libopenmpi-dev openmpi-bin
)
# PyTorch is optional (benchmark peer scripts): DIFFUSE_WITH_TORCH=1 adds it.
if [[ "${DIFFUSE_WITH_TORCH:-0}" == 1 ]]; then packages+=(python3-torch); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages are installed"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
