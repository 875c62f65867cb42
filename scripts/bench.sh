#!/usr/bin/env bash
# bench.sh — the project's benchmarks, against throwaway PostgreSQL and
# MariaDB started as for the tests. Each benchmark measures Stillpoint and the
# tool or plain database a user would otherwise use, side by side in one run,
# and reports the ratio.
#
#   ./scripts/bench.sh                     # every benchmark
#   ./scripts/bench.sh -bench BankVersus   # one of them
set -euo pipefail
cd "$(dirname "$0")/.."
envdir=$(mktemp -d "${TMPDIR:-/tmp}/stillpoint-bench.XXXXXX")
trap 'bash scripts/testenv.sh down "$envdir" || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bash scripts/testenv.sh up "$envdir" --owner-pid $$
# shellcheck source=/dev/null
source "$envdir/env"
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(-bench .)
go test -run '^$' -benchtime 1x -timeout 60m "${args[@]}" ./...
