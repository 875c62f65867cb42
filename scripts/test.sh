#!/usr/bin/env bash
# test.sh — THE project test command.
#
#   ./scripts/test.sh                                  # everything: ./...
#   ./scripts/test.sh -run Conformance ./internal/storage/...
#   ./scripts/test.sh -v ./internal/testenv/
#
# It checks formatting (gofmt -l) and runs `go vet ./...` over the whole
# module, then starts throwaway PostgreSQL 15 and MariaDB servers
# (scripts/testenv.sh), exports their DSNs (STILLPOINT_TEST_*) and runs
#
#   go test -race -count=1 -timeout 40m [ARGS...]
#
# ARGS are passed to go test unchanged, after the defaults (so e.g. -count=3
# or -timeout 90m override them). Package arguments must be written as
# relative paths (./..., ./internal/x) or full import paths
# (github.com/stillpoint/stillpoint/...); when ARGS contain none, ./... is
# appended. The exit code is go test's (or 1 if gofmt/vet/setup fail). The
# servers are always stopped and their directory removed on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
MODULE=github.com/stillpoint/stillpoint

# Formatting: every .go file except testdata and vendor.
unformatted=$(find . -name '*.go' -not -path './.git/*' -not -path './vendor/*' \
	-not -path '*/testdata/*' -print0 | xargs -0 -r gofmt -l)
if [ -n "$unformatted" ]; then
	echo "gofmt: these files need formatting (run gofmt -w):" >&2
	echo "$unformatted" >&2
	exit 1
fi

go vet ./...

# Servers live in a short temp dir (unix socket paths are length-limited).
envdir=$(mktemp -d "${TMPDIR:-/tmp}/stillpoint-test.XXXXXX")
cleanup() {
	local rc=$?
	bash scripts/testenv.sh down "$envdir" || true
	exit "$rc"
}
trap cleanup EXIT
# Turn Ctrl-C / kill into a normal exit so the EXIT trap stops the servers.
trap 'exit 130' INT
trap 'exit 143' TERM

# --owner-pid: a watchdog stops the servers even if this script is SIGKILLed.
bash scripts/testenv.sh up "$envdir" --owner-pid $$
# shellcheck source=/dev/null
source "$envdir/env"

args=("$@")
have_pkg=false
for a in "$@"; do
	case $a in
	./* | ../* | . | .. | "$MODULE" | "$MODULE"/*) have_pkg=true ;;
	esac
done
$have_pkg || args+=(./...)

set +e
go test -race -count=1 -timeout 40m "${args[@]}"
rc=$?
set -e
exit "$rc"
