#!/usr/bin/env bash
# gen-proto.sh — regenerate the Go code of proto/ (committed, so building
# needs no protoc). Needs protoc (Debian: protobuf-compiler); installs the
# Go plugins from the module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "gen-proto: install protoc (apt-get install protobuf-compiler)" >&2; exit 1; }
GOBIN=$(go env GOPATH)/bin
go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0
PATH=$GOBIN:$PATH protoc -I proto -I /usr/include \
	--go_out=. --go_opt=module=github.com/stillpoint/stillpoint \
	--go-grpc_out=. --go-grpc_opt=module=github.com/stillpoint/stillpoint \
	rpc/admin.proto stillpoint/v1/transaction.proto
