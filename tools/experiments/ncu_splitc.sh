# ncu's raw metrics of a layer's tuned kernel and of split-C variants, joined into $OUT/ncu_splitc.csv.
# Run from the repository root on the GPU, after splitc_ab.py has filled the kernel cache.
source tools/gpu_env.sh >/dev/null 2>&1
cd tools/experiments
: > $OUT/ncu_splitc.csv
L=${LAYER:-pw_256_512_14}
for V in "tuned" "4 2 4 64" "4 8 4 64" "16 2 2 64"; do
  timeout 150 ncu --clock-control none --cache-control none -k regex:irprune --launch-skip 30 --launch-count 1 \
    --section SpeedOfLight --section WarpStateStats --section MemoryWorkloadAnalysis \
    --section LaunchStats --section Occupancy --section SchedulerStats --section InstructionStats \
    --csv --page raw python3 ncu_splitc.py $L $V > /tmp/ncu.csv 2> /tmp/ncu.err
  echo "$L $V rc $? $(tail -1 /tmp/ncu.err)"
  echo "# $L $V" >> $OUT/ncu_splitc.csv; cat /tmp/ncu.csv >> $OUT/ncu_splitc.csv
done
