#!/usr/bin/env bash
# Fails when the committed generated code under clients/ is not what
# scripts/generate.sh produces from protos/ now: someone changed a proto
# without regenerating, or edited generated code by hand.
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo_root"

"$repo_root/scripts/generate.sh"

# Byproducts of building or importing the clients are not generated code and
# may exist in a checkout that has no .gitignore entry for them.
changes="$(git status --porcelain --untracked-files=all -- clients/ \
  ':(exclude,glob)clients/**/__pycache__/**' \
  ':(exclude,glob)clients/**/*.egg-info/**' \
  ':(exclude,glob)clients/python/build/**')"

if [[ -n "$changes" ]]; then
  {
    echo "check-generated: generated code under clients/ is stale."
    echo "These files differ from what scripts/generate.sh produces:"
    echo "$changes"
    echo
    git --no-pager diff --stat -- clients/
    echo
    echo "Run scripts/generate.sh (make generate) and commit the result."
  } >&2
  exit 1
fi
echo "check-generated: clients/ matches protos/"
