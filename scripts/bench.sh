#!/usr/bin/env bash
# bench.sh — the project's benchmarks, against throwaway PostgreSQL and
# MariaDB started as for the tests. Each benchmark measures Stillpoint and the
# tool or plain database a user would otherwise use, side by side in one run,
# and reports the ratio.
#
#   ./scripts/bench.sh                     # every benchmark
#   ./scripts/bench.sh -bench BankVersus   # one of them
#   ./scripts/bench.sh -bench BackupRestore ./internal/backup/
#
# STILLPOINT_BENCH_ROWS sizes the backup benchmark (default 5,000,000).
set -euo pipefail
cd "$(dirname "$0")/.."
envdir=$(mktemp -d "${TMPDIR:-/tmp}/stillpoint-bench.XXXXXX")
trap 'bash scripts/testenv.sh down "$envdir" || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
STILLPOINT_TESTENV_BENCH=1 bash scripts/testenv.sh up "$envdir" --owner-pid $$
# shellcheck source=/dev/null
source "$envdir/env"
args=("$@")
have_bench=false
have_pkg=false
for a in "$@"; do
	case $a in
	-bench | -bench=*) have_bench=true ;;
	./* | github.com/*) have_pkg=true ;;
	esac
done
$have_bench || args=(-bench . "${args[@]}")
$have_pkg || args+=(./...)
out="$envdir/bench.out"
set +e
go test -run '^$' -benchtime 1x -timeout 60m "${args[@]}" | tee "$out"
rc=${PIPESTATUS[0]}
set -e
# One table of every ratio the benchmarks reported (time, size, memory,
# throughput of Stillpoint against the tool a user would otherwise run).
echo
echo "ratios (Stillpoint / the other tool; < 1 is better for times, sizes and memory, > 1 for throughput):"
awk '/^Benchmark/ { name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
	for (i = 5; i < NF; i += 2) if ($(i+1) ~ /ratio/) printf "  %-34s %-52s %8.2f\n", name, $(i+1), $i }' "$out"
exit "$rc"
