#!/usr/bin/env bash
# Installs the build and test dependencies from Debian's archive. Idempotent and
# non-interactive: packages already present are not fetched again.
#   scripts/setup.sh          libraries, compilers, GoogleTest
#   scripts/setup.sh --bench  also Debian's PyTorch (CPU), the side-by-side reference
set -euo pipefail

pkgs=(cmake g++ make pkg-config libopenblas-openmp-dev libyaml-cpp-dev libfmt-dev nlohmann-json3-dev
      libgtest-dev libgmock-dev libutf8proc-dev)
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(python3-torch python3-numpy)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

if command -v nvcc >/dev/null 2>&1 || [[ -x /usr/local/cuda/bin/nvcc ]]; then
  echo "setup: CUDA toolkit found ($(PATH=$PATH:/usr/local/cuda/bin nvcc --version | tail -1))"
else
  echo "setup: no CUDA toolkit: building the CPU backend only"
fi
