#!/usr/bin/env bash
# Installs what building the TypeScript and Go clients needs on a fresh Debian
# machine (CI runs as root there). Safe to run again: apt-get and npm ci both
# converge to the same state.
#
# Go comes from Debian, not from the Go module proxy (which is unreachable):
# Debian ships grpc-go and protobuf-go as source under /usr/share/gocode, so the
# Go client builds in GOPATH mode (see scripts/go-gopath-build.sh).
set -euo pipefail

cd "$(dirname "$0")/.."

debian_packages=(
  golang-go
  protoc-gen-go
  protoc-gen-go-grpc
  golang-google-grpc-dev
  golang-google-protobuf-dev
  golang-github-golang-protobuf-1-5-dev
)

missing=()
for package in "${debian_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-client-toolchains: need root to apt-get install: ${missing[*]}" >&2
    exit 1
  fi
  echo "install-client-toolchains: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm ci installs exactly what package-lock.json pins, including protoc-gen-es.
echo "install-client-toolchains: npm ci in clients/typescript"
(cd clients/typescript && npm ci --no-audit --no-fund)
