#!/usr/bin/env bash
# The science run prepared for one GPU: the whole pipeline, sized for <= 9 minutes on one H100.
#
#   bash benchmarks/gpu_science.sh                  # report in gpu_science/ (report.md, report.json)
#   bash benchmarks/gpu_science.sh --out DIR
#   bash benchmarks/gpu_science.sh --tiny           # tiny models, a few steps, on the CPU: checks the script
#
# Stages: stage 1 (the ~2 h recipe's VQGAN, more steps), stage 2 (the lab's 72 M transformer at batch
# 256), then holes.py: the model and every baseline on the lab's masks and on small, medium and large
# boxes (genuine FID with intervals, 747 test images). Step counts are estimates for an H100; each
# training stage also stops at its time cap (trainer.max_time), and the report shows the steps reached.
# The report is rewritten after every stage, so a run cut short still leaves what it measured.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=gpu_science tiny=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --tiny) tiny=1; shift ;;
        *) echo "error: unknown argument $1 (use --out DIR, --tiny)" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"
report() { python benchmarks/gpu_science_report.py "$out"; }
stage() {  # stage NAME COMMAND...: run, time and log it, then rewrite the report
    local name="$1"; shift
    echo "gpu_science: stage $name"
    local start; start=$(date +%s)
    "$@" > "$out/$name.log" 2>&1 || { echo "error: stage $name failed, see $out/$name.log" >&2; report; exit 1; }
    echo "$name $(( $(date +%s) - start ))" >> "$out/seconds.txt"
    report
}
rm -f "$out/seconds.txt"
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" || true
fi

if [[ $tiny == 1 ]]; then
    common=(trainer=cpu logger=csv trainer.enable_progress_bar=false)
    stage1=(experiment=quickstart_vqgan vqgan=tiny trainer.max_steps=4 trainer.val_check_interval=4
            data.limit.train=64 data.limit.val=16 data.batch_size=8)
    stage2=(experiment=quickstart model=tiny vqgan=tiny trainer.max_steps=4 trainer.val_check_interval=4
            data.limit.train=64 data.limit.val=16 data.batch_size=8)
    holes=(reduced=true "eval=['decoding=quickstart','temperature=1.0']"
           "common=['logger=csv','trainer=cpu','trainer.enable_progress_bar=false','metrics.fid.features=64','metrics.fid.bootstrap=20']")
else
    common=(trainer=gpu logger=csv)
    # stage 1: the ~2 h recipe's VQGAN (1,600 steps of 16 on the CPU), here up to 6,000 steps of 64
    stage1=(experiment=cpu2h_vqgan data.batch_size=64 trainer.max_steps=6000 trainer.val_check_interval=2000
            +trainer.max_time=00:00:02:00)
    # stage 2: the lab's transformer (15 layers, dim 768) on every train image, batch 256, bf16
    stage2=(experiment=cpu2h model=lab data.batch_size=256 data.encode_batch_size=512 model.optimizer.lr=5e-4
            model.scheduler.warmup_steps=300 trainer.max_steps=6000 trainer.val_check_interval=2000
            +trainer.max_time=00:00:04:00)
    holes=("eval=['decoding=quickstart']" "common=['logger=csv']")
fi

stage vqgan python train.py "${common[@]}" "${stage1[@]}" hydra.run.dir="$out/vqgan"
stage transformer python train.py "${common[@]}" "${stage2[@]}" hydra.run.dir="$out/transformer" \
    vqgan.ckpt_path="$out/vqgan/checkpoints/last.ckpt"
# the model and the baselines on the lab's masks and three box sizes (the hole-size curve's ends and middle)
stage holes python holes.py +models.gpu="$out/transformer/checkpoints/last.ckpt" hydra.run.dir="$out/holes" \
    '~holes.box_15' '~holes.box_40' '~holes.strokes_w4' '~holes.strokes_w8' '~holes.strokes_w16' "${holes[@]}"
echo "gpu_science: report in $out/report.md"
