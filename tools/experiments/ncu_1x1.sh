source tools/gpu_env.sh >/dev/null 2>&1
cd tools/experiments
python3 ncu_1x1.py prebuild 2>&1 | tail -2
mkdir -p $OUT/ncu
for L in l3_1x1_512_256 l3_1x1_1024_256 pw_512_512_14 l2_1x1_256_128 l1_1x1_256_64 pw_128_128_56 l1_1x1_64_64 pw_256_512_14 l3_1x1_256_1024; do
  timeout 120 ncu --clock-control none -k regex:irprune --launch-skip 2 --launch-count 1 \
    --section SpeedOfLight --section WarpStateStats --section MemoryWorkloadAnalysis \
    --section MemoryWorkloadAnalysis_Tables --section LaunchStats --section Occupancy --section SchedulerStats --section InstructionStats \
    --csv --page details python3 ncu_1x1.py $L > $OUT/ncu/$L.csv 2> $OUT/ncu/$L.err
  echo $L $? $(wc -l < $OUT/ncu/$L.csv) $(tail -1 $OUT/ncu/$L.err)
done
