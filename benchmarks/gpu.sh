#!/usr/bin/env bash
# The GPU figures in one go (issue 19): the speedrun anchor, `fast` warm and cold on JAX and
# PyTorch, `best` on JAX, and an ensemble; prints a table, writes benchmarks/gpu-DATE.json.
#
#   pip install -e '.[jax,torch]'   # with the CUDA builds of jax/torch, or a GPU image's own
#   bash benchmarks/gpu.sh
#
# Each training runs alone, one after another. QUICK=1 runs every step at toy size (anchor
# once, fast with one warm run, best and two fast members for one epoch of 4,096 images), to
# check the plumbing on a CPU. MEMBERS (5) and MEMBER_RECIPE (best) set the ensemble.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
QUICK=${QUICK:-0}
MEMBERS=${MEMBERS:-5}
MEMBER_RECIPE=${MEMBER_RECIPE:-best}
runs=10 seeds=1 warm=5 small=""
if [ "$QUICK" = 1 ]; then
    runs=1 warm=1 small="--epochs 1 --train-limit 4096" MEMBERS=2 MEMBER_RECIPE=fast
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

echo "== anchor (PyTorch), $runs timed runs after a warm-up" >&2
$PYTHON benchmarks/anchor.py --runs "$runs" --out "$tmp/anchor.json" >/dev/null
for backend in jax torch; do
    echo "== fast on $backend: one cold process, then $warm warm runs in it" >&2
    KERAS_BACKEND=$backend $PYTHON benchmarks/bench.py --recipes fast --seeds "$seeds" \
        --warm "$warm" --train-only --out "$tmp/fast-$backend.json" >/dev/null
done
echo "== best on jax" >&2
# shellcheck disable=SC2086
KERAS_BACKEND=jax $PYTHON -m mnist_cnn train --recipe best $small --out "$tmp/best" >&2
members=()
for seed in $(seq 1 "$MEMBERS"); do
    echo "== ensemble member $seed/$MEMBERS ($MEMBER_RECIPE, seed $seed) on jax" >&2
    # shellcheck disable=SC2086
    KERAS_BACKEND=jax $PYTHON -m mnist_cnn train --recipe "$MEMBER_RECIPE" --seed "$seed" $small \
        --out "$tmp/member$seed" >&2
    members+=("$tmp/member$seed")
done
KERAS_BACKEND=jax $PYTHON -m mnist_cnn ensemble "${members[@]}" --out "$tmp/ensemble" >&2

$PYTHON - "$tmp" "$MEMBERS" "$MEMBER_RECIPE" "$QUICK" <<'EOF'
import json, sys
from datetime import date
from pathlib import Path

tmp, members, recipe, quick = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
read = lambda p: json.loads((tmp / p).read_text())
anchor = read("anchor.json")
fast = {b: read(f"fast-{b}.json")["results"][0] for b in ("jax", "torch")}
best, ens = read("best/metrics.json"), read("ensemble/metrics.json")
top = min(fast, key=lambda b: fast[b]["warm_train_seconds_median"])
report = {
    "date": date.today().isoformat(),
    "device": anchor["device"],
    "quick": quick == "1",
    "anchor_warm_median_s": anchor["anchor_warm_median_s"],
    "anchor_mean_acc": anchor["anchor_mean_acc"],
    **{f"fast_{b}_warm_median_s": fast[b]["warm_train_seconds_median"] for b in fast},
    **{f"fast_{b}_mean_acc": fast[b]["warm_test_accuracy_mean"] for b in fast},
    **{f"fast_{b}_cold_s": fast[b]["train_seconds_median"] for b in fast},
    "fast_backend": top,  # the backend with the fastest warm runs; its figures below
    "fast_warm_median_s": fast[top]["warm_train_seconds_median"],
    "fast_mean_acc": fast[top]["warm_test_accuracy_mean"],
    "fast_cold_median_s": fast[top]["train_seconds_median"],
    "best_train_seconds": best["train_seconds"],
    "best_test_accuracy": best["test_accuracy"],
    "ensemble_members": members,
    "ensemble_member_recipe": recipe,
    "ensemble_test_accuracy": ens["test_accuracy"],
}
Path(f"benchmarks/gpu-{report['date']}{'-quick' if quick == '1' else ''}.json").write_text(
    json.dumps(report, indent=2) + "\n"
)
a = report["anchor_warm_median_s"]
print(f"device: {report['device']}\n")
print("| run | seconds | test accuracy | vs anchor |\n| --- | --- | --- | --- |")
print(f"| anchor, warm (median) | {a:.3f} | {100 * report['anchor_mean_acc']:.2f}% | 1x |")
for b in fast:
    w = report[f"fast_{b}_warm_median_s"]
    print(f"| fast {b}, warm (median) | {w:.3f} | {100 * report[f'fast_{b}_mean_acc']:.2f}% "
          f"| {a / w:.1f}x |")
    print(f"| fast {b}, cold process | {report[f'fast_{b}_cold_s']:.2f} | | |")
print(f"| best jax | {best['train_seconds']:.1f} | {100 * best['test_accuracy']:.2f}% | |")
print(f"| ensemble of {members} {recipe} | | {100 * ens['test_accuracy']:.2f}% | |")
EOF
