#!/usr/bin/env bash
# campaign.sh — the long trial campaigns (kills, corruptions, restores, pauses).
#
#   ./scripts/campaign.sh                 # every TestCampaign* at its full count
#   ./scripts/campaign.sh 5               # 5 trials of each
#   ./scripts/campaign.sh full -run TestCampaignRestoreKill ./internal/restore/
#   BUSY=2 ./scripts/campaign.sh full     # with 2 CPU-bound busy loops beside it
#
# The campaigns are ordinary Go tests named TestCampaign*; scripts/test.sh runs
# them with a small count (testenv.Trials), this script with the counts the
# issues ask for. Extra arguments go to scripts/test.sh (and so to go test).
set -euo pipefail
cd "$(dirname "$0")/.."

trials=${1:-full}
[ $# -gt 0 ] && shift
busy=${BUSY:-0}
pids=()
stop_busy() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap stop_busy EXIT
for ((i = 0; i < busy; i++)); do
	(while :; do :; done) &
	pids+=($!)
done

args=("$@")
have_run=false
for a in "$@"; do [ "$a" = -run ] && have_run=true; done
$have_run || args=(-run '^TestCampaign' "${args[@]}")
STILLPOINT_TRIALS=$trials bash scripts/test.sh -timeout 6h -v "${args[@]}"
