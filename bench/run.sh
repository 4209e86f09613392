#!/usr/bin/env bash
# bench/run.sh: the side-by-side benchmark (direct, nginx, HAProxy, Switchyard).
# Every flag goes to bench/cmd/compare; see bench/README.md.
#
#   bench/run.sh                  3 repetitions of 10s at 50 and 200 connections
#   bench/run.sh --quick          3s runs
#   bench/run.sh --smoke          1s runs, 1 repetition: checks the harness
#   bench/run.sh --out docs/bench.md
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
bin="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/bin"
mkdir -p "$bin"
go build -o "$bin/compare" ./bench/cmd/compare
exec "$bin/compare" "$@"
