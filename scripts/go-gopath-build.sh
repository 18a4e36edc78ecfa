#!/usr/bin/env bash
# Vets, builds and tests the Go client without the Go module proxy, which these
# machines cannot reach: in GOPATH mode (GO111MODULE=off) against the grpc-go
# and protobuf-go sources that Debian installs under /usr/share/gocode
# (scripts/install-client-toolchains.sh).
#
#   scripts/go-gopath-build.sh                      gofmt check, vet, build, test
#   scripts/go-gopath-build.sh run ./examples/quickstart
#                                                   any other go command, run in
#                                                   the same GOPATH from clients/go
#
# GOPATH mode finds a package by its import path under $GOPATH/src, so a
# throwaway GOPATH gets a symlink from the module path (clients/go/go.mod) to
# clients/go. Commands run from inside that symlink with `./...`: from the
# repo's own path the packages would get `_/...` import paths, and the pattern
# `<module>/...` skips a symlinked directory.
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
debian_gopath=/usr/share/gocode

command -v go >/dev/null || {
  echo "go-gopath-build: go not found: run scripts/install-client-toolchains.sh" >&2
  exit 1
}
[[ -d "$debian_gopath/src/google.golang.org/grpc" ]] || {
  echo "go-gopath-build: $debian_gopath has no grpc-go: run scripts/install-client-toolchains.sh" >&2
  exit 1
}

module="$(awk '$1 == "module" { print $2; exit }' "$repo_root/clients/go/go.mod")"
scratch_gopath="$(mktemp -d)"
trap 'rm -rf "$scratch_gopath"' EXIT

mkdir -p "$scratch_gopath/src/$(dirname "$module")"
ln -s "$repo_root/clients/go" "$scratch_gopath/src/$module"

export GO111MODULE=off
export GOPATH="$scratch_gopath:$debian_gopath"
export GOFLAGS=
cd "$scratch_gopath/src/$module/"

if (($# > 0)); then
  go "$@"
  exit
fi

echo "go-gopath-build: $(go version), GOPATH=$GOPATH"
unformatted="$(gofmt -l .)"
if [[ -n "$unformatted" ]]; then
  echo "go-gopath-build: not gofmt-formatted:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
# With several packages, build ./... only compiles: it writes no binaries into
# the tree.
go build ./...
go test ./...
