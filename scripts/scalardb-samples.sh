#!/usr/bin/env bash
# Loads every schema-loader file scalardb-samples ever held, and ScalarDB
# 3.4.9's schema-loader/sample/schema_sample.json, each into a fresh
# embedded-default data directory with the real CLI (stillpoint schema load),
# and prints a pass/fail table. Not part of the test suite: it needs clones of
# two third-party repositories, which the project does not copy. The suite's
# own schema files with the same features are in internal/schema
# (featureFiles) and docs/schema-files.md says which feature comes from where.
#
# usage: scripts/scalardb-samples.sh SAMPLES_GIT SCALARDB_GIT
#   SAMPLES_GIT   a clone or bare mirror of scalar-labs/scalardb-samples
#                 (every ref is searched: branches, tags, refs/pull/* if fetched)
#   SCALARDB_GIT  a clone or bare mirror of scalar-labs/scalardb (tag v3.4.9)
#   STILLPOINT    the binary to use (default: built from this checkout)
#
# A schema file is a *.json blob with a "partition-key" in it. Each distinct
# (path, content) is loaded once. The ScalarDB version a file is read as is
# the one its sample used when the file first appeared (its schema loader's,
# else the ScalarDB library its Gradle files name), at least 3.4 (the oldest
# layout Stillpoint reads); none found: Stillpoint's default (newest).
# Exit status: 0 if every file loaded, 1 otherwise, 2 on bad usage.
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 SAMPLES_GIT SCALARDB_GIT (git clones or mirrors of scalar-labs/scalardb-samples and scalar-labs/scalardb)" >&2
	exit 2
fi
samples=$1 scalardb=$2
for r in "$samples" "$scalardb"; do
	git -C "$r" rev-parse --git-dir >/dev/null 2>&1 || { echo "$0: $r is not a git repository" >&2; exit 2; }
done
git -C "$scalardb" rev-parse -q --verify 'v3.4.9^{commit}' >/dev/null || { echo "$0: $scalardb has no tag v3.4.9 (fetch the tags)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=${STILLPOINT:-}
if [ -z "$bin" ]; then
	bin=$work/stillpoint
	(cd "$(dirname "$0")/.." && go build -o "$bin" ./cmd/stillpoint)
fi

# version_at COMMIT PATH: the ScalarDB version the sample holding PATH
# used at COMMIT ("" if none is named): its schema loader's (a
# scalardb-schema-loader image or jar named anywhere in the sample), else
# the newest ScalarDB library its Gradle files depend on.
version_at() {
	local commit=$1 path=$2 dir v
	dir=${path%%/*}
	case $path in */*) ;; *) dir=. ;; esac
	[ "$dir" = src ] && dir=.
	v=$(git -C "$samples" grep -h -o -E "scalardb-schema-loader[-:][0-9]+\.[0-9]+\.[0-9]+" "$commit" -- "$dir" 2>/dev/null |
		grep -o -E '[0-9]+\.[0-9]+\.[0-9]+' | sort -V | tail -1 || true)
	[ -n "$v" ] && { echo "$v"; return; }
	git -C "$samples" grep -h -o -E "scalardb[-a-z]*:[0-9]+\.[0-9]+\.[0-9]+|name: *'scalardb', *version: *'[0-9]+\.[0-9]+\.[0-9]+|\"scalardb\", *\"[0-9]+\.[0-9]+\.[0-9]+|scalarDbVersion *= *['\"][0-9]+\.[0-9]+\.[0-9]+" \
		"$commit" -- "$dir/*.gradle" "$dir/*.gradle.kts" "$dir/*/*.gradle" "$dir/*/*.gradle.kts" 2>/dev/null |
		grep -o -E '[0-9]+\.[0-9]+\.[0-9]+' | sort -V | tail -1 || true
}

# at_least_34 V: V, or 3.4 if V is older.
at_least_34() {
	if [ "$(printf '%s\n3.4\n' "$1" | sort -V | head -1)" = "$1" ] && [ "$1" != 3.4 ]; then echo 3.4; else echo "$1"; fi
}

# Every (blob, path) of a *.json file over all refs, oldest commit first,
# keeping the first commit each appeared in.
git -C "$samples" rev-list --all --reverse --topo-order |
	while read -r c; do
		git -C "$samples" ls-tree -r "$c" | awk -v c="$c" '$4 ~ /\.json$/ {print $3, c, $4}'
	done | awk '!seen[$1 " " $3]++' >"$work/blobs"

i=0 failed=0
: >"$work/paths"
printf '%-3s %-100s %-8s %-8s %-8s %-7s %s\n' '#' FILE BLOB FIRST-IN VERSION CREATED RESULT
# load NAME VERSION SHOWN BLOB FIRST-IN <FILE: loads FILE into a fresh data
# directory, reading it as VERSION ("" = the default), and prints its row.
load() {
	local name=$1 version=$2 shown=$3 blob=$4 first=$5 file out tables
	i=$((i + 1))
	file=$work/$i.json
	cat >"$file"
	local args=(--data-dir "$work/data-$i" --json schema load "$file")
	[ -n "$version" ] && args+=(--scalardb-version "$version")
	if out=$("$bin" "${args[@]}" 2>"$work/err-$i"); then
		tables=$(grep -c '"outcome": "created"' <<<"$out" || true)
		printf '%-3s %-100s %-8s %-8s %-8s %-7s %s\n' "$i" "$name" "$blob" "$first" "$shown" "$tables" pass
	else
		failed=$((failed + 1))
		printf '%-3s %-100s %-8s %-8s %-8s %-7s %s\n' "$i" "$name" "$blob" "$first" "$shown" - "FAIL: $(tr '\n' ' ' <"$work/err-$i")"
	fi
}
while read -r blob commit path; do
	git -C "$samples" cat-file -p "$blob" | grep -q '"partition-key"' || continue
	echo "$path" >>"$work/paths"
	v=$(version_at "$commit" "$path")
	if [ -n "$v" ]; then
		use=$(at_least_34 "$v")
		shown=$v
		[ "$use" != "$v" ] && shown="$v>3.4"
	else
		use="" shown=default
	fi
	load "scalardb-samples:$path" "$use" "$shown" "${blob:0:7}" "${commit:0:7}" < <(git -C "$samples" cat-file -p "$blob")
done <"$work/blobs"
blob=$(git -C "$scalardb" rev-parse v3.4.9:schema-loader/sample/schema_sample.json)
load "scalardb@v3.4.9:schema-loader/sample/schema_sample.json" 3.4 3.4.9 "${blob:0:7}" v3.4.9 < <(git -C "$scalardb" cat-file -p "$blob")

echo
echo "$(sort -u "$work/paths" | wc -l) distinct schema-file paths in scalardb-samples, $((i - 1)) distinct (path, content) pairs, plus ScalarDB 3.4.9's sample: $((i - failed)) of $i loaded"
[ "$failed" -eq 0 ]
