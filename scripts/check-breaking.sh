#!/usr/bin/env bash
# Fails when protos/ breaks the last released contract: runs `buf breaking` (the FILE rules of
# protos/buf.yaml) against protos/ as committed at a git reference, by default the newest
# release tag (v*, highest version first).
#
#   scripts/check-breaking.sh            # against the newest v* tag
#   scripts/check-breaking.sh v1.2.0     # against a tag, a branch or a commit
#
# Before the first release there is nothing to compare with: the script says so and exits 0,
# so that CI can run it from the start and it guards the contract from the first tag on.
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo_root"

if [[ -n "${VIRTUAL_ENV:-}" && -x "$VIRTUAL_ENV/bin/buf" ]]; then
  buf="$VIRTUAL_ENV/bin/buf"
elif [[ -x .venv/bin/buf ]]; then
  buf=.venv/bin/buf
elif command -v buf >/dev/null; then
  buf=buf
else
  echo "check-breaking: buf not found: run make setup (it installs buf-bin into .venv)" >&2
  exit 1
fi

if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "check-breaking: not a git checkout, so no released contract to compare with; skipped."
  exit 0
fi

against="${1:-}"
if [[ -z "$against" ]]; then
  against="$(git tag --list 'v*' --sort=-version:refname | head -n 1)"
  if [[ -z "$against" ]]; then
    echo "check-breaking: no release tag (v*) yet, so no released contract to compare with;" \
      "nothing to check. The first tag turns this check on."
    exit 0
  fi
fi

if ! git rev-parse --verify --quiet "${against}^{commit}" >/dev/null; then
  echo "check-breaking: '$against' names no tag, branch or commit of this repository" >&2
  exit 1
fi
if ! git cat-file -e "${against}:protos/buf.yaml" 2>/dev/null; then
  echo "check-breaking: '$against' has no protos/ module; nothing to compare with."
  exit 0
fi

# buf reads the local repository itself: a tag by name, anything else (branch, commit) as a ref.
if git show-ref --verify --quiet "refs/tags/$against"; then
  input=".git#tag=$against,subdir=protos"
else
  input=".git#ref=$against,subdir=protos"
fi
echo "check-breaking: comparing protos/ with $against"
"$buf" breaking protos --against "$input"
echo "check-breaking: no breaking change since $against"
