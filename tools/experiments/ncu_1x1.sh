# ncu's raw metrics (speed of light, warp states, memory, scheduler, launch) of each 1x1 layer's
# tuned kernel, one CSV per layer joined into $OUT/ncu_1x1.csv. Run from the repository root on the GPU.
source tools/gpu_env.sh >/dev/null 2>&1
cd tools/experiments
python3 ncu_1x1.py prebuild 2>&1 | tail -2
: > $OUT/ncu_1x1.csv
for L in ${LAYERS:-l3_1x1_512_256 l3_1x1_1024_256 pw_512_512_14 l2_1x1_256_128 l1_1x1_256_64 pw_128_128_56 l1_1x1_64_64 pw_256_512_14 l3_1x1_256_1024}; do
  timeout 150 ncu --clock-control none --cache-control none -k regex:irprune --launch-skip 30 --launch-count 1 \
    --section SpeedOfLight --section WarpStateStats --section MemoryWorkloadAnalysis \
    --section LaunchStats --section Occupancy --section SchedulerStats --section InstructionStats \
    --csv --page raw python3 ncu_1x1.py $L > /tmp/ncu_$L.csv 2> /tmp/ncu_$L.err
  echo "$L rc $? $(tail -1 /tmp/ncu_$L.err)"
  echo "# $L" >> $OUT/ncu_1x1.csv; cat /tmp/ncu_$L.csv >> $OUT/ncu_1x1.csv
done
