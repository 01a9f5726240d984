#!/usr/bin/env bash
# Regenerate every committed synthetic row (issue 12's list, in priority order) into OUT, at one
# commit with a clean tree (the committed rows: 1fabee5; README "Results" says which are done);
# then copy OUT/results/runs/* to results/runs/ and rebuild the leaderboards with
# ssfbench.results.write_leaderboards(Path("results")).
#   results/rerun-synthetic.sh OUT        (one command after another; a killed run resumes when rerun)
set -u
# The committed rows used one torch thread per process and were made on AVX2 CPUs; on an AVX-512
# CPU, numpy's AVX-512 kernels change the last bits (results/README.md, `cpu_kernels`), so pin them.
export OMP_NUM_THREADS=1
[ "$(uname -m)" = x86_64 ] && export NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"
OUT=${1:?usage: results/rerun-synthetic.sh OUT}
LOG="$OUT/rerun.log"
mkdir -p "$OUT"
run() {
  echo "$(date +%T) START ssfbench $*" >> "$LOG"
  local t0=$(date +%s)
  ssfbench "$@" --out "$OUT" --quiet >> "$LOG.full" 2>&1
  echo "$(date +%T) END rc=$? $(( $(date +%s) - t0 ))s ssfbench $*" >> "$LOG"
}
run run --method random --seeds 0 1 2
run run --method ranking --k 2 --seeds 0 1 2
run run --method triplet --k 2 --seeds 0 1 2
run run --method npair --k 2 --seeds 0 1 2
run run --method fabnet --seeds 0 1 2
run run --method tcae --seeds 0 1 2
run run --method pixels
run run --method random --set bn_stats=init --seeds 0 1 2
run run --method supervised
ssfbench synth calibrate --out "$OUT" >> "$LOG.full" 2>&1
run run --method ranking --k 2 --data-option synth-vox.pose_drift=false
run run --method ranking --k 2 --data-option synth-vox.speech=false
run run --method ranking --k 2 --data-option synth-vox.pose_drift=false --seeds 1 2
run run --method ranking --k 2 --data-option synth-vox.speech=false --seeds 1 2
run run --method ranking --k 2 --lr 0.01 --seeds 0 1 2
run run --method ranking --k 1 2 4
run run --method ranking --k 1 2 4 --steps 0   # the ensemble's own initialisation (today's code runs it with the line above)
run run --method ranking --k 2 --steps 1200 --seeds 0 1 2
run run --method ranking --k 2 --steps 1200 --lr 0.01 --seeds 0 1 2
# The statistics control (README, "Trained weights or trained statistics?"), at c50951d or later, in the same OUT:
#   ssfbench run --method triplet --k 2 --seeds 0 1 2 --bn-stats data   (and npair, fabnet, tcae, ranking as listed there)
echo "$(date +%T) ALL DONE" >> "$LOG"
