#!/usr/bin/env bash
# testenv.sh — throwaway PostgreSQL 15 + MariaDB + MinIO servers for the test suite.
#
# Usage:
#   scripts/testenv.sh up DIR [--owner-pid PID]
#   scripts/testenv.sh down DIR
#   scripts/testenv.sh up-dynalite DIR [--owner-pid PID]   (dynalite alone)
#
# `up` installs missing packages (only when something is missing, and only as
# root or with passwordless sudo), starts both servers with all their files
# under DIR, listening on free ports on 127.0.0.1 only, and writes DIR/env:
#
#   export STILLPOINT_TEST_POSTGRES_DSN='postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable'
#   export STILLPOINT_TEST_MYSQL_DSN='stillpoint:stillpoint@tcp(127.0.0.1:PORT)/'
#   export STILLPOINT_TEST_PG_BIN='/usr/lib/postgresql/15/bin'
#   export STILLPOINT_TEST_S3_ENDPOINT='127.0.0.1:PORT'      (MinIO, plain http)
#   export STILLPOINT_TEST_S3_ACCESS_KEY='...'
#   export STILLPOINT_TEST_S3_SECRET_KEY='...'
#   export STILLPOINT_TEST_DYNAMO_ENDPOINT='http://127.0.0.1:PORT'  (dynalite)
#
# dynalite (a DynamoDB-compatible server on Node) has no Debian package: `up`
# installs a pinned version with npm into a cache directory outside the
# repository, once (see the dynalite section below). `up-dynalite` starts
# only dynalite, for test binaries run against an environment from before it.
#
# MinIO has no Debian package: `up` builds it with `go install` when it is
# missing (once; see the minio section below).
#
# With --owner-pid, a detached watchdog runs `down DIR` once PID has exited, so
# a test process that dies without cleaning up (panic, go test -timeout,
# SIGKILL) never leaves servers behind.
#
# `down` stops the servers (and the watchdog) and removes DIR.
#
# When run as root (as CI does), the servers run as the unprivileged system
# user "stillpoint-test" (created if missing): PostgreSQL refuses to run as
# root and MariaDB should not.
#
# Tunables (environment):
#   STILLPOINT_TESTENV_PG_BIN   PostgreSQL bin dir (default /usr/lib/postgresql/15/bin)
#   STILLPOINT_TESTENV_TIMEOUT  seconds to wait for each server (default 120)
#   STILLPOINT_TESTENV_USER     user to run servers as when root (default stillpoint-test)
#   STILLPOINT_TESTENV_MINIO_BIN      minio binary to use (default: found or built)
#   STILLPOINT_TESTENV_MINIO_VERSION  github.com/minio/minio version to build
#   STILLPOINT_TESTENV_DYNALITE_DIR   npm prefix holding dynalite
#                                     (default ~/.cache/stillpoint/dynalite)
set -euo pipefail

PG_BIN=${STILLPOINT_TESTENV_PG_BIN:-/usr/lib/postgresql/15/bin}
TIMEOUT=${STILLPOINT_TESTENV_TIMEOUT:-120}
RUN_USER=${STILLPOINT_TESTENV_USER:-stillpoint-test}
MYSQL_USER=stillpoint
MYSQL_PASSWORD=stillpoint
SELF=$(readlink -f "${BASH_SOURCE[0]}")

log() { echo "testenv: $*" >&2; }
die() { echo "testenv: ERROR: $*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# AS_USER is the command prefix that runs a program as the unprivileged server
# user when we are root. setpriv execs in place (no forked parent), so `$!` of
# a backgrounded "${AS_USER[@]}" cmd is the server's own pid.
AS_USER=()
if is_root; then
	if command -v setpriv >/dev/null; then
		AS_USER=(setpriv --reuid="$RUN_USER" --regid="$RUN_USER" --init-groups --)
	else
		AS_USER=(runuser -u "$RUN_USER" --)
	fi
fi
run_as() { "${AS_USER[@]}" "$@"; }

# tail_log prints the end of a server log to help explain a failure.
tail_log() {
	if [ -f "$1" ]; then
		echo "----- last lines of $1 -----" >&2
		tail -n 40 "$1" >&2 || true
		echo "-----" >&2
	fi
}

# ---------------------------------------------------------------- packages --

mariadb_backup_present() { command -v mariadb-backup >/dev/null || command -v mariabackup >/dev/null; }

# missing_packages prints the Debian packages whose programs are absent.
missing_packages() {
	local pkgs=()
	[ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] && [ -x "$PG_BIN/psql" ] || pkgs+=(postgresql-15)
	command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null || pkgs+=(mariadb-server)
	command -v mariadb >/dev/null || pkgs+=(mariadb-client)
	mariadb_backup_present || pkgs+=(mariadb-backup)
	command -v protoc >/dev/null || pkgs+=(protobuf-compiler)
	# go test -race needs cgo, i.e. a C compiler and libc headers.
	command -v gcc >/dev/null || pkgs+=(gcc libc6-dev)
	command -v node >/dev/null || pkgs+=(nodejs)
	command -v npm >/dev/null || pkgs+=(npm)
	# The benchmarks (scripts/bench.sh) also compare with mydumper/myloader.
	[ -z "${STILLPOINT_TESTENV_BENCH:-}" ] || command -v mydumper >/dev/null || pkgs+=(mydumper)
	echo "${pkgs[*]}"
}

ensure_packages() {
	local missing sudo=()
	missing=$(missing_packages)
	[ -z "$missing" ] && return 0
	if ! is_root; then
		if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
			sudo=(sudo -n)
		else
			die "missing packages: $missing (install them with apt-get, or run as root)"
		fi
	fi
	# Several test binaries may run `up` at once: serialise installs and
	# re-check under the lock so only the first one installs.
	(
		flock 9
		missing=$(missing_packages)
		[ -z "$missing" ] && exit 0
		log "installing missing packages: $missing"
		export DEBIAN_FRONTEND=noninteractive
		# shellcheck disable=SC2086 # word splitting of the package list is intended
		"${sudo[@]}" apt-get update -q >&2 &&
			"${sudo[@]}" apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 $missing >&2
	) 9<"$SELF" || die "package installation failed" # lock: the script itself, always readable
	missing=$(missing_packages)
	[ -z "$missing" ] || die "packages still missing after install: $missing"
}

ensure_user() {
	is_root || return 0
	id -u "$RUN_USER" >/dev/null 2>&1 && return 0
	log "creating system user $RUN_USER"
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin "$RUN_USER" 2>/dev/null ||
		id -u "$RUN_USER" >/dev/null 2>&1 || # lost a race with a concurrent up
		die "cannot create user $RUN_USER"
}

# ------------------------------------------------------------------- ports --

port_in_use() {
	if command -v ss >/dev/null; then
		[ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# pick_port picks a random free port below the kernel's ephemeral range
# (32768+), so outgoing connections cannot be holding it.
pick_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((20000 + RANDOM % 12000))
		port_in_use "$p" || {
			echo "$p"
			return 0
		}
	done
	die "no free TCP port found"
}

# -------------------------------------------------------------- postgres --

pg_start() {
	local dir=$1 data=$1/pg/data pglog=$1/pg/postgres.log port attempt
	log "initdb (PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'))"
	# --auth=trust: throwaway server reachable only from 127.0.0.1 / DIR socket.
	run_as "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 \
		--locale=C.UTF-8 --nosync >"$dir/pg/initdb.log" 2>&1 ||
		{ tail_log "$dir/pg/initdb.log"; die "initdb failed"; }
	for attempt in 1 2 3 4 5; do
		port=$(pick_port)
		# postgresql.auto.conf overrides postgresql.conf and survives restarts.
		cat >"$data/postgresql.auto.conf" <<-EOF
			listen_addresses = '127.0.0.1'
			port = $port
			unix_socket_directories = '$dir/run'
			max_connections = 300
			wal_level = replica
			max_wal_senders = 10
			max_replication_slots = 10
			fsync = off
			synchronous_commit = off
			full_page_writes = off
			logging_collector = off
		EOF
		chown "$(stat -c %u:%g "$data")" "$data/postgresql.auto.conf"
		if run_as "$PG_BIN/pg_ctl" -D "$data" -l "$pglog" -w -t "$TIMEOUT" start >/dev/null 2>&1; then
			PG_PORT=$port
			break
		fi
		# Lost a race for the port with another process: try another one.
		if grep -q "Address already in use" "$pglog" 2>/dev/null && [ "$attempt" -lt 5 ]; then
			log "postgres port $port taken, retrying"
			pg_stop "$dir"
			continue
		fi
		tail_log "$pglog"
		die "PostgreSQL did not start within ${TIMEOUT}s"
	done
	"$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atc 'SELECT 1' >/dev/null ||
		{ tail_log "$pglog"; die "PostgreSQL is not reachable over TCP on 127.0.0.1:$PG_PORT"; }
	log "postgres ready on 127.0.0.1:$PG_PORT"
}

pg_stop() {
	local data=$1/pg/data pid
	[ -f "$data/postmaster.pid" ] || return 0
	pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
	run_as "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
		run_as "$PG_BIN/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
	# Last resort, only if that pid really is this data directory's postmaster.
	if [ -n "$pid" ] && grep -qsF "$data" "/proc/$pid/cmdline"; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
}

# ---------------------------------------------------------------- mariadb --

mysql_sock() { echo "$1/run/mysqld.sock"; }

mysql_root() {
	local dir=$1
	shift
	mariadb --no-defaults --protocol=socket --socket="$(mysql_sock "$dir")" -uroot "$@"
}

mysql_start() {
	local dir=$1 my=$1/mysql port attempt pid waited
	log "mariadb-install-db ($(mariadbd --version | awk '{print $3}'))"
	# auth-root-authentication-method=normal: root@localhost without password,
	# so bootstrap works the same whichever OS user we are.
	run_as mariadb-install-db --no-defaults --datadir="$my/data" --tmpdir="$my/tmp" \
		--auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
		>"$my/install-db.log" 2>&1 ||
		{ tail_log "$my/install-db.log"; die "mariadb-install-db failed"; }
	for attempt in 1 2 3 4 5; do
		port=$(pick_port)
		# Created as the server user: mariadbd reopens it for --log-error.
		run_as touch "$my/error.log"
		# Output goes to files: an inherited pipe would make callers (e.g. Go's
		# exec) wait for the server to exit.
		"${AS_USER[@]}" mariadbd --no-defaults \
			--datadir="$my/data" --tmpdir="$my/tmp" \
			--socket="$(mysql_sock "$dir")" --pid-file="$my/mariadbd.pid" \
			--log-error="$my/error.log" \
			--bind-address=127.0.0.1 --port="$port" --skip-name-resolve \
			--log-bin=mysql-bin --server-id=1 --binlog-format=ROW \
			--innodb-flush-log-at-trx-commit=2 --max-connections=500 \
			--character-set-server=utf8mb4 --default-time-zone=+00:00 \
			</dev/null >>"$my/error.log" 2>&1 &
		pid=$!
		echo "$pid" >"$dir/mysql/launch.pid"
		waited=0
		until mysql_root "$dir" -e 'SELECT 1' >/dev/null 2>&1; do
			if ! kill -0 "$pid" 2>/dev/null; then
				break
			fi
			if [ "$waited" -ge $((TIMEOUT * 5)) ]; then
				tail_log "$my/error.log"
				die "MariaDB did not accept connections within ${TIMEOUT}s"
			fi
			sleep 0.2
			waited=$((waited + 1))
		done
		if kill -0 "$pid" 2>/dev/null; then
			MYSQL_PORT=$port
			break
		fi
		wait "$pid" 2>/dev/null || true
		if grep -qE "Address already in use|another server running on port" "$my/error.log" && [ "$attempt" -lt 5 ]; then
			log "mariadb port $port taken, retrying"
			continue
		fi
		tail_log "$my/error.log"
		die "MariaDB exited during startup"
	done

	# A TCP user from 127.0.0.1 (what go-sql-driver uses), plus '%' and
	# 'localhost' for other clients. Anonymous users (older install-db
	# versions create them) are dropped: ''@localhost would otherwise shadow
	# 'stillpoint'@'%' for local logins.
	mysql_root "$dir" <<-EOF || { tail_log "$my/error.log"; die "creating the MariaDB test user failed"; }
		DELETE FROM mysql.global_priv WHERE User = '';
		FLUSH PRIVILEGES;
		CREATE USER '$MYSQL_USER'@'127.0.0.1' IDENTIFIED BY '$MYSQL_PASSWORD';
		CREATE USER '$MYSQL_USER'@'%' IDENTIFIED BY '$MYSQL_PASSWORD';
		CREATE USER '$MYSQL_USER'@'localhost' IDENTIFIED BY '$MYSQL_PASSWORD';
		GRANT ALL PRIVILEGES ON *.* TO '$MYSQL_USER'@'127.0.0.1' WITH GRANT OPTION;
		GRANT ALL PRIVILEGES ON *.* TO '$MYSQL_USER'@'%' WITH GRANT OPTION;
		GRANT ALL PRIVILEGES ON *.* TO '$MYSQL_USER'@'localhost' WITH GRANT OPTION;
	EOF
	mariadb --no-defaults --protocol=tcp -h 127.0.0.1 -P "$MYSQL_PORT" \
		-u"$MYSQL_USER" -p"$MYSQL_PASSWORD" -e 'SELECT 1' >/dev/null ||
		{ tail_log "$my/error.log"; die "MariaDB is not reachable over TCP on 127.0.0.1:$MYSQL_PORT"; }
	log "mariadb ready on 127.0.0.1:$MYSQL_PORT"
}

# mysql_pid_alive succeeds if pid is a mariadbd serving this DIR (guards
# against signalling a recycled pid).
mysql_pid_alive() {
	[ -n "$1" ] && grep -qsF "$2/mysql/data" "/proc/$1/cmdline"
}

mysql_stop() {
	local dir=$1 pid="" i
	[ -d "$dir/mysql" ] || return 0
	for f in "$dir/mysql/mariadbd.pid" "$dir/mysql/launch.pid"; do
		[ -f "$f" ] || continue
		pid=$(cat "$f" 2>/dev/null || true)
		mysql_pid_alive "$pid" "$dir" && break
		pid=""
	done
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 300); do # up to 60s for a clean shutdown
		mysql_pid_alive "$pid" "$dir" || return 0
		sleep 0.2
	done
	log "mariadbd $pid did not stop, killing it"
	kill -KILL "$pid" 2>/dev/null || true
	for i in $(seq 1 50); do
		mysql_pid_alive "$pid" "$dir" || return 0
		sleep 0.2
	done
}

# ------------------------------------------------------------------ minio --

# MinIO (S3-compatible storage for the repository tests) has no Debian
# package: it is built from source with the Go toolchain, once, and reused.
# MINIO_VERSION pins github.com/minio/minio to the module proxy's @latest
# of 2026-11 (a pseudo-version: MinIO publishes no semver tags); it builds
# with Go 1.26 in about 2 minutes on 2 cores. The binary is looked up in
# STILLPOINT_TESTENV_MINIO_BIN, PATH, $(go env GOPATH)/bin and
# /usr/local/bin; when missing it is installed into /usr/local/bin as root
# (the server user must be able to run it, and /root is not searchable for
# it) and into $(go env GOPATH)/bin otherwise.
MINIO_VERSION=${STILLPOINT_TESTENV_MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}
# Throwaway credentials of a server reachable only on 127.0.0.1.
MINIO_USER=stillpoint-test
MINIO_PASSWORD=stillpoint-test-secret

# minio_usable succeeds if $1 is a minio binary the server user can run.
minio_usable() {
	[ -n "$1" ] && [ -x "$1" ] && run_as test -x "$1"
}

# find_minio prints a usable minio binary, or nothing.
find_minio() {
	local c gopath
	gopath=$(go env GOPATH 2>/dev/null || true)
	for c in "${STILLPOINT_TESTENV_MINIO_BIN:-}" "$(command -v minio || true)" \
		"${gopath:+$gopath/bin/minio}" /usr/local/bin/minio; do
		if minio_usable "$c"; then
			echo "$c"
			return 0
		fi
	done
}

ensure_minio() {
	MINIO_BIN=$(find_minio)
	[ -n "$MINIO_BIN" ] && return 0
	if [ -n "${STILLPOINT_TESTENV_MINIO_BIN:-}" ]; then
		die "STILLPOINT_TESTENV_MINIO_BIN=$STILLPOINT_TESTENV_MINIO_BIN is not an executable the server user can run"
	fi
	command -v go >/dev/null || die "minio is missing and go is not in PATH to build it"
	local gobin existing
	if is_root; then
		gobin=/usr/local/bin
	else
		gobin=$(go env GOPATH)/bin
	fi
	# Several test binaries may run `up` at once: only the first builds.
	(
		flock 9
		MINIO_BIN=$(find_minio)
		[ -n "$MINIO_BIN" ] && exit 0
		# A binary the server user cannot reach (e.g. in /root/go/bin) is
		# copied rather than rebuilt.
		existing=$(command -v minio || true)
		[ -x "$(go env GOPATH)/bin/minio" ] && existing=$(go env GOPATH)/bin/minio
		if [ -n "$existing" ] && [ -x "$existing" ] && [ "$existing" != "$gobin/minio" ]; then
			log "copying $existing to $gobin/minio"
			install -m 0755 "$existing" "$gobin/minio" >&2
			exit 0
		fi
		log "building minio $MINIO_VERSION into $gobin (takes a few minutes, once)"
		local start=$SECONDS
		mkdir -p "$gobin"
		(cd / && GOBIN=$gobin GOFLAGS=-buildvcs=false go install "github.com/minio/minio@$MINIO_VERSION") >&2 ||
			exit 1
		log "minio built in $((SECONDS - start))s"
	) 9<"$SELF" || die "building minio failed (go install github.com/minio/minio@$MINIO_VERSION)"
	MINIO_BIN=$(find_minio)
	[ -n "$MINIO_BIN" ] || die "minio still missing after the build"
}

# http_ok succeeds if GET http://127.0.0.1:$1$2 answers 200 (bash only, no
# curl needed).
http_ok() {
	local status
	status=$(
		exec 2>/dev/null
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$2" "$1" >&3
		timeout 5 head -n 1 <&3
	) || return 1
	[[ $status == "HTTP/1."?" 200"* ]]
}

# serve_on_free_port starts a server on a free port, retrying on another
# one when the port was taken meanwhile: NAME LOG PIDFILE INUSE_PATTERN
# EXEC READY. "EXEC PORT" must exec the server (so $! is its pid) with its
# output appended to LOG; "READY PORT" succeeds once it serves. Sets
# SERVED_PORT.
serve_on_free_port() {
	local name=$1 logf=$2 pidfile=$3 inuse=$4 exec_fn=$5 ready=$6 port attempt pid waited
	for attempt in 1 2 3 4 5; do
		port=$(pick_port)
		"$exec_fn" "$port" </dev/null >>"$logf" 2>&1 &
		pid=$!
		echo "$pid" >"$pidfile"
		waited=0
		until "$ready" "$port"; do
			kill -0 "$pid" 2>/dev/null || break
			if [ "$waited" -ge $((TIMEOUT * 5)) ]; then
				tail_log "$logf"
				die "$name did not become ready within ${TIMEOUT}s"
			fi
			sleep 0.2
			waited=$((waited + 1))
		done
		if kill -0 "$pid" 2>/dev/null; then
			SERVED_PORT=$port
			return 0
		fi
		wait "$pid" 2>/dev/null || true
		if grep -qi "$inuse" "$logf" && [ "$attempt" -lt 5 ]; then
			log "$name: port $port taken, retrying"
			continue
		fi
		tail_log "$logf"
		die "$name exited during startup"
	done
}

# minio_exec runs MinIO on port $1, its console on another free port.
minio_exec() {
	local m=$MINIO_DIR cport
	cport=$(pick_port)
	[ "$1" != "$cport" ] || cport=$(($1 + 1))
	# MINIO_CI_CD: a single drive on the root filesystem is fine here.
	# --certs-dir: not under $HOME, which the server user cannot write.
	exec "${AS_USER[@]}" env MINIO_ROOT_USER="$MINIO_USER" MINIO_ROOT_PASSWORD="$MINIO_PASSWORD" \
		MINIO_CI_CD=1 MINIO_UPDATE=off MINIO_BROWSER=off \
		"$MINIO_BIN" server "$m/data" --address "127.0.0.1:$1" \
		--console-address "127.0.0.1:$cport" --certs-dir "$m/certs" --quiet
}

minio_live() { http_ok "$1" /minio/health/live; }

minio_start() {
	MINIO_DIR=$1/minio
	log "minio ($("$MINIO_BIN" --version 2>/dev/null | head -n 1 | awk '{print $3}'), $MINIO_BIN)"
	serve_on_free_port MinIO "$MINIO_DIR/minio.log" "$MINIO_DIR/minio.pid" "address already in use" minio_exec minio_live
	MINIO_PORT=$SERVED_PORT
	log "minio ready on 127.0.0.1:$MINIO_PORT"
}

# minio_pid_alive succeeds if pid is a minio serving this DIR.
minio_pid_alive() {
	[ -n "$1" ] && grep -qsF "$2/minio/data" "/proc/$1/cmdline"
}

# stop_server NAME PIDFILE ALIVE DIR TRIES: TERM the server whose pid
# PIDFILE holds if "ALIVE PID DIR" says it is this DIR's, wait up to
# TRIES × 0.2s, then KILL it.
stop_server() {
	local name=$1 pidfile=$2 alive=$3 dir=$4 tries=$5 pid i
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile" 2>/dev/null || true)
	"$alive" "$pid" "$dir" || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 "$tries"); do
		"$alive" "$pid" "$dir" || return 0
		sleep 0.2
	done
	log "$name $pid did not stop, killing it"
	kill -KILL "$pid" 2>/dev/null || true
	for i in $(seq 1 50); do
		"$alive" "$pid" "$dir" || return 0
		sleep 0.2
	done
}

minio_stop() { stop_server minio "$1/minio/minio.pid" minio_pid_alive "$1" 150; } # up to 30s

# --------------------------------------------------------------- dynalite --

# DYNALITE_VERSION is pinned: 4.0.0 is the newest release (npm view dynalite
# version). It has no TransactWriteItems (UnknownOperationException); the
# engine falls back as docs/dynamodb.md says.
DYNALITE_VERSION=4.0.0
DYNALITE_DIR=${STILLPOINT_TESTENV_DYNALITE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stillpoint/dynalite}
DYNALITE_CLI=$DYNALITE_DIR/node_modules/dynalite/cli.js

dynalite_installed() {
	[ -f "$DYNALITE_CLI" ] && grep -qsF "\"version\": \"$DYNALITE_VERSION\"" "$DYNALITE_DIR/node_modules/dynalite/package.json"
}

ensure_dynalite() {
	dynalite_installed && return 0
	command -v npm >/dev/null || die "npm is missing (apt-get install npm)"
	mkdir -p "$DYNALITE_DIR"
	(
		flock 9
		dynalite_installed && exit 0
		log "installing dynalite $DYNALITE_VERSION into $DYNALITE_DIR (once)"
		npm install --prefix "$DYNALITE_DIR" --no-audit --no-fund --loglevel=error \
			"dynalite@$DYNALITE_VERSION" >&2 || die "npm install dynalite@$DYNALITE_VERSION failed"
	) 9>"$DYNALITE_DIR/.install.lock"
}

# dynalite_exec runs dynalite in memory on port $1 (no files, so it runs as
# the invoking user), tables ACTIVE at once instead of after 500ms.
dynalite_exec() {
	exec node "$DYNALITE_CLI" --host 127.0.0.1 --port "$1" \
		--createTableMs 0 --deleteTableMs 0 --updateTableMs 0
}

dynalite_start() {
	local d=$1/dynalite
	mkdir -p "$d"
	log "dynalite $DYNALITE_VERSION ($DYNALITE_CLI)"
	serve_on_free_port dynalite "$d/dynalite.log" "$d/dynalite.pid" EADDRINUSE dynalite_exec port_in_use
	DYNALITE_PORT=$SERVED_PORT
	log "dynalite ready on 127.0.0.1:$DYNALITE_PORT"
}

# dynalite_pid_alive succeeds if pid is the dynalite started for this DIR.
dynalite_pid_alive() {
	[ -n "$1" ] && grep -qsF "dynalite" "/proc/$1/cmdline" && [ "$(cat "$2/dynalite/dynalite.pid" 2>/dev/null)" = "$1" ]
}

dynalite_stop() { stop_server dynalite "$1/dynalite/dynalite.pid" dynalite_pid_alive "$1" 50; } # up to 10s

# --------------------------------------------------------------- commands --

stop_all() {
	local dir=$1 wpid
	pg_stop "$dir"
	mysql_stop "$dir"
	minio_stop "$dir"
	dynalite_stop "$dir"
	if [ -f "$dir/watchdog.pid" ]; then
		wpid=$(cat "$dir/watchdog.pid" 2>/dev/null || true)
		if [ -n "$wpid" ] && [ "$wpid" != "$$" ] && grep -qsF "$dir" "/proc/$wpid/cmdline"; then
			kill -TERM "$wpid" 2>/dev/null || true
		fi
	fi
}

# up_failed is the EXIT trap while `up` is starting servers.
up_failed() {
	local rc=$?
	[ "$rc" = 0 ] && return 0
	log "up failed, stopping what was started (logs kept in $UP_DIR)"
	stop_all "$UP_DIR"
	exit "$rc"
}

# guard_up DIR [OWNER_PID]: from here on, a failure must not leave servers
# running. Signals are turned into exits so the EXIT trap also runs on
# Ctrl-C / kill. With OWNER_PID, the watchdog is started first so that it
# also covers the startup itself; detached, with no inherited stdio, so it
# never holds a caller's pipe.
guard_up() {
	local dir=$1 owner_pid=${2:-}
	UP_DIR=$dir
	trap up_failed EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
	if [ -n "$owner_pid" ]; then
		setsid bash "$SELF" watch "$dir" "$owner_pid" </dev/null >/dev/null 2>&1 &
		echo $! >"$dir/watchdog.pid"
	fi
}

cmd_up() {
	local dir=$1 owner_pid=${2:-}
	ensure_packages
	ensure_user
	ensure_minio
	ensure_dynalite

	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd -P)
	[ -z "$(ls -A "$dir")" ] || die "$dir is not empty (already up? run: $0 down $dir)"
	# Unix socket paths are limited to 107 bytes.
	[ ${#dir} -le 80 ] || die "$dir is too long for unix socket paths; use a shorter DIR (or TMPDIR)"
	mkdir -p "$dir/pg" "$dir/mysql/data" "$dir/mysql/tmp" "$dir/run" "$dir/minio/data" "$dir/minio/certs"
	if is_root; then
		chown -R "$RUN_USER:$RUN_USER" "$dir"
		run_as test -w "$dir/run" ||
			die "$RUN_USER cannot reach $dir (a parent directory is not world-searchable?)"
	fi
	# The servers' children must not inherit a cwd they cannot read (/root).
	cd "$dir"

	guard_up "$dir" "$owner_pid"
	local start=$SECONDS
	pg_start "$dir"
	mysql_start "$dir"
	minio_start "$dir"
	dynalite_start "$dir"

	cat >"$dir/env.tmp" <<-EOF
		export STILLPOINT_TEST_POSTGRES_DSN='postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable'
		export STILLPOINT_TEST_MYSQL_DSN='$MYSQL_USER:$MYSQL_PASSWORD@tcp(127.0.0.1:$MYSQL_PORT)/'
		export STILLPOINT_TEST_PG_BIN='$PG_BIN'
		export STILLPOINT_TEST_S3_ENDPOINT='127.0.0.1:$MINIO_PORT'
		export STILLPOINT_TEST_S3_ACCESS_KEY='$MINIO_USER'
		export STILLPOINT_TEST_S3_SECRET_KEY='$MINIO_PASSWORD'
		export STILLPOINT_TEST_DYNAMO_ENDPOINT='http://127.0.0.1:$DYNALITE_PORT'
	EOF
	mv "$dir/env.tmp" "$dir/env"

	trap - EXIT HUP INT TERM
	log "up in $((SECONDS - start))s; environment in $dir/env"
}

# cmd_up_dynalite starts dynalite alone into DIR (DIR/env sets only its
# endpoint), for a test binary whose environment predates it.
cmd_up_dynalite() {
	local dir=$1 owner_pid=${2:-}
	ensure_dynalite
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd -P)
	[ -z "$(ls -A "$dir")" ] || die "$dir is not empty (already up? run: $0 down $dir)"
	guard_up "$dir" "$owner_pid"
	dynalite_start "$dir"
	echo "export STILLPOINT_TEST_DYNAMO_ENDPOINT='http://127.0.0.1:$DYNALITE_PORT'" >"$dir/env.tmp"
	mv "$dir/env.tmp" "$dir/env"
	trap - EXIT HUP INT TERM
}

cmd_down() {
	local dir=$1
	if [ ! -d "$dir" ]; then
		log "$dir does not exist, nothing to do"
		return 0
	fi
	dir=$(cd "$dir" && pwd -P)
	cd /
	stop_all "$dir"
	rm -rf "$dir"
	log "down: $dir removed"
}

# watch waits for the owner process to go away, then tears DIR down (unless
# someone already did).
cmd_watch() {
	local dir=$1 owner=$2
	echo $$ >"$dir/watchdog.pid"
	while [ -d "/proc/$owner" ] && [ -d "$dir" ]; do
		sleep 1
	done
	[ -d "$dir" ] && cmd_down "$dir"
	return 0
}

usage() { die "usage: $0 up DIR [--owner-pid PID] | up-dynalite DIR [--owner-pid PID] | down DIR"; }

[ $# -ge 2 ] || usage
case $1 in
up | up-dynalite)
	owner=""
	if [ $# -eq 4 ] && [ "$3" = --owner-pid ]; then
		owner=$4
		[[ $owner =~ ^[0-9]+$ ]] || usage
	elif [ $# -ne 2 ]; then
		usage
	fi
	if [ "$1" = up ]; then cmd_up "$2" "$owner"; else cmd_up_dynalite "$2" "$owner"; fi
	;;
down) cmd_down "$2" ;;
watch) cmd_watch "$2" "$3" ;;
*) usage ;;
esac
