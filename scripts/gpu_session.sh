#!/usr/bin/env bash
# Every GPU check of this project in one call, for a GPU machine lent for a few minutes:
#   1. build the CUDA ops, their CUDA-vs-reference parity tests and op timings   (scripts/gpu_check.py)
#   2. the benchmark table at full size                                          (scripts/bench.py)
#      and a torch.profiler table of one full-size face step                     (scripts/profile_step.py)
#   3. real train.py runs of the full `face` config at 512^2, batch 8 (EG3D's reference setting), TF32 on
#      (our default) and off (as EG3D sets it), on random images: the loop's own s/kimg tick lines
#   4. the tiny pipeline end to end on CUDA: world, face / head_ft / head3d, a resume check,
#      gen_samples images + shapes, calc_metrics
# Each part has its own time limit and the script goes on after a failure; logs go to $OUT (or ./gpu-out).
# Python packages the machine lacks (lpips, plyfile, mrcfile, imageio-ffmpeg) are installed from wheels in .whl/ if
# present (README, "Speed (measured)").
# Usage: bash scripts/gpu_session.sh [PART ...]     PART: ops bench profile train e2e (default: all; about 8 min on an H200)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
DEV="${GPU_DEVICE:-cuda}"   # GPU_DEVICE=cpu rehearses the script on a machine without a GPU
export PYTHONUNBUFFERED=1
# A lent machine gets a copy of the checkout and no install step (`make venv` runs `pip install -e .`): point Python
# at the checkout's packages instead.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
WORK="${GPU_WORK:-/tmp/head3d-gpu}"
mkdir -p "$WORK"
PARTS="${*:-ops bench profile train e2e}"
want() { [[ " $PARTS " == *" $1 "* ]]; }
summary="$OUT/summary.txt"
note() { echo "$*" | tee -a "$summary"; }

if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
note "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1)"
note "== $("$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)')"

# part NAME LIMIT_S LOG CMD...: run one step under a time limit, log it, note its exit status and time.
part() {
    local name=$1 limit=$2 log=$3; shift 3
    local t0=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$OUT/$log"
    local rc=${PIPESTATUS[0]}
    note "== $name: rc $rc in $((SECONDS - t0)) s"
    return "$rc"
}

if want ops; then
    part ops 200 ops.log "$PY" scripts/gpu_check.py --iters 20
fi

if want bench; then
    part bench 200 bench.log "$PY" scripts/bench.py --json "$OUT/bench.json" --repeat 5
fi

if want profile; then
    part profile 150 profile.log "$PY" scripts/profile_step.py --steps 3 --rows 40
fi

if want train; then
    # Random 512^2 images with valid EG3D labels: the loop's speed does not depend on the pixels.
    "$PY" - "$WORK/rand512" <<'EOF'
import json, os, sys
import numpy as np, PIL.Image, torch
from training import cameras
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
n, rng = 64, np.random.default_rng(0)
labels = cameras.make_label(torch.linspace(-0.6, 0.6, n), torch.zeros(n))
rows = []
for i in range(n):
    name = f'img{i:08d}.png'
    PIL.Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)).save(os.path.join(out, name), compress_level=1)
    rows.append([name, labels[i].tolist()])
with open(os.path.join(out, 'dataset.json'), 'w') as f:
    json.dump({'labels': rows}, f)
EOF
    common=(--config face --data "$WORK/rand512" --batch 8 --set tick_kimg=0.25 --set snap_kimg=100 --set grid_size=[2,1])
    part train_tf32 150 train.log "$PY" train.py "${common[@]}" --outdir "$WORK/face_tf32" --kimg 1.0
    part train_notf32 120 train.log "$PY" train.py "${common[@]}" --outdir "$WORK/face_notf32" --kimg 0.5 --set tf32=false
    grep -h "^tick" "$OUT/train.log" | tee -a "$summary"
fi

if want e2e; then
    W="$WORK/e2e"
    part e2e_world 60 e2e.log "$PY" scripts/make_synthetic.py --outdir "$W/world" --faces 200 --head-ids 8 --views 12 --res 64
    part e2e_face 90 e2e.log "$PY" train.py --config face_tiny --data "$W/world/faces.zip" --outdir "$W/face" --kimg 0.2 --set snap_kimg=0.1
    teacher=$(ls "$W"/face/snapshot-*.pt | tail -1)
    part e2e_head_ft 90 e2e.log "$PY" train.py --config head_ft_tiny --data "$W/world/heads.zip" --init "$teacher" --outdir "$W/head_ft" --kimg 0.2 --set snap_kimg=0.1
    init=$(ls "$W"/head_ft/snapshot-*.pt | tail -1)
    h3=(--config head3d_tiny --faces "$W/world/faces.zip" --heads "$W/world/heads.zip" --teacher "$teacher" --init "$init" --set snap_kimg=0.1)
    # Resume on CUDA: 0.2 kimg straight (twice) vs 0.1 kimg then resumed to 0.2. grid_sample's backward adds
    # atomically on CUDA, so two straight runs may differ slightly; the resumed run must differ no more than that.
    part e2e_head3d 90 e2e.log "$PY" train.py "${h3[@]}" --outdir "$W/head3d" --kimg 0.2 --set deterministic=true
    part e2e_head3d_again 90 e2e.log "$PY" train.py "${h3[@]}" --outdir "$W/head3d_b" --kimg 0.2 --set deterministic=true
    part e2e_head3d_half 90 e2e.log "$PY" train.py "${h3[@]}" --outdir "$W/head3d_r" --kimg 0.1 --set deterministic=true
    part e2e_head3d_resume 90 e2e.log "$PY" train.py "${h3[@]}" --outdir "$W/head3d_r" --kimg 0.2 --set deterministic=true
    part e2e_resume_compare 60 e2e.log "$PY" - "$W" <<'EOF'
import sys
from training.snapshot import load_snapshot
def g_ema(run):
    path = f'{sys.argv[1]}/{run}/snapshot-0000000200.pt'     # all three at 0.2 kimg
    return path, load_snapshot(path, build=False)['nets']['G_ema']['state']
def maxdiff(a, b):
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)
(pa, a), (pb, b), (pr, r) = g_ema('head3d'), g_ema('head3d_b'), g_ema('head3d_r')
repeat, resumed = maxdiff(a, b), maxdiff(a, r)
print(f'CUDA G_ema max |diff|: straight vs straight {repeat:.3g}; straight vs resumed {resumed:.3g} ({pa}, {pr})')
sys.exit(0 if resumed <= repeat * 10 else 1)
EOF
    student=$(ls "$W"/head3d/snapshot-*.pt | tail -1)
    part e2e_images 60 e2e.log "$PY" gen_samples.py images --network "$student" --seeds 0-3 --views yaw:0,90,180 --outdir "$W/samples" --device "$DEV"
    part e2e_shapes 60 e2e.log "$PY" gen_samples.py shapes --network "$student" --seeds 0 --shape-res 64 --outdir "$W/shapes" --device "$DEV"
    part e2e_metrics 150 e2e.log "$PY" scripts/calc_metrics.py --network "$student" --data "$W/world/heads.zip" --metrics fd_randconv,kd_randconv,id_proxy,consistency3d --split all,back --num 64 --teacher "$teacher" --num-id 32 --c3d-ids 1 --c3d-iters 100 --out "$W/metrics.jsonl" --device "$DEV"
    cp "$W"/samples/grid*.png "$OUT/" 2>/dev/null | head -1
fi
note "== done"
