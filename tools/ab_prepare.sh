#!/usr/bin/env bash
# Prepare an A/B run of irprune versions on the lent GPU (run locally, before the device call).
#   bash tools/ab_prepare.sh 385d708 4b89e1d      # commits (or any git revisions) to compare with the working tree
# Writes ab/<revision>/irprune for each. ab/ is git-ignored: name it in the device call's
# carry list (["ab", ".whl"]), then run `bash tools/gpu_ab.sh <bench flags>` there.
set -eu
cd "$(git rev-parse --show-toplevel)"
rm -rf ab && mkdir -p ab
for rev in "$@"; do
  mkdir -p "ab/$rev"
  git archive "$rev" irprune | tar -x -C "ab/$rev"
  # templates/ is installed as irprune.templates: without its own copy the revision would
  # import the working tree's templates (the editable install maps the name there)
  mkdir -p "ab/$rev/irprune/templates"
  git archive "$rev" templates | tar -x -C "ab/$rev/irprune/templates" --strip-components=1
  echo "ab/$rev <- $(git rev-parse --short "$rev")"
done
