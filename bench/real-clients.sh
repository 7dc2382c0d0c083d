#!/usr/bin/env bash
# Checks a running server with the real clients its benchmark uses, and prints their figures.
#
#   bench/real-clients.sh KIND ADDR
#
# KIND is what answers at ADDR (host:port, [v6]:port):
#   http         an HTTP/1.1 plaintext server: wrk, then wrk with 16-deep pipelining
#                (bench/wrk-pipeline.lua); no socket errors, no non-2xx, more than 0 requests.
#   redis        a Redis-protocol server: redis-benchmark -t ping,set,get with -P 1 and -P 16
#                completes with a figure per test and no error reply; redis-cli carries a 1 MiB
#                random value through SET then GET intact.
#   proxy-http   a proxy in front of an HTTP server: the http checks, through it.
#   proxy-redis  a proxy in front of a Redis-protocol server: the redis checks, through it.
#
# Exits 0 if every check passed, 1 if one failed, 2 on a usage error or a missing client
# (apt-get install wrk redis-tools). Every client call is bounded by `timeout`: about 10 s in
# all against a working server, at most about 3 minutes against one that never answers.
set -uo pipefail

usage() {
    echo "usage: $0 http|redis|proxy-http|proxy-redis ADDR" >&2
    exit 2
}
[ $# -eq 2 ] || usage
kind=$1
addr=$2
here=$(cd "$(dirname "$0")" && pwd)
port=${addr##*:}
host=${addr%:*}
host=${host#[}
host=${host%]}
[ -n "$host" ] && [ -n "$port" ] && [ "$host" != "$addr" ] || usage

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

need() {
    command -v "$1" >/dev/null || {
        echo "$0: $1 not found (apt-get install $2)" >&2
        exit 2
    }
}

# run_wrk NAME WRK_ARGS...: one wrk run, its report printed and read.
run_wrk() {
    local name=$1 out=$tmp/wrk.out requests
    shift
    echo "== $name: wrk $*"
    if ! timeout 30 wrk "$@" >"$out" 2>&1; then
        cat "$out"
        fail "$name: wrk failed or timed out"
        return
    fi
    cat "$out"
    # wrk prints these lines only when there is something to count.
    ! grep -q 'Socket errors' "$out" || fail "$name: socket errors"
    ! grep -q 'Non-2xx or 3xx responses' "$out" || fail "$name: non-2xx responses"
    requests=$(sed -n 's/^ *\([0-9][0-9]*\) requests in .*/\1/p' "$out")
    [ "${requests:-0}" -gt 0 ] || fail "$name: no request completed"
}

check_http() {
    need wrk wrk
    local url="http://$addr/"
    run_wrk "$kind" -t1 -c10 -d2s "$url"
    run_wrk "$kind pipelined" -t1 -c10 -d2s -s "$here/wrk-pipeline.lua" "$url" -- 16
}

# run_benchmark PIPELINE: redis-benchmark at that pipeline depth.
run_benchmark() {
    local depth=$1 out=$tmp/benchmark.out status test
    local args=(-h "$host" -p "$port" -t "ping,set,get" -n 20000 -q -P "$depth")
    echo "== $kind: redis-benchmark ${args[*]}"
    timeout 60 redis-benchmark "${args[@]}" >"$out" 2>&1
    status=$?
    # -q still draws progress lines ended by a carriage return: keep the final figures.
    tr '\r' '\n' <"$out" | grep -v 'rps=' | grep -v '^ *$'
    [ "$status" -eq 0 ] || fail "$kind -P $depth: redis-benchmark exited with $status"
    for test in PING_INLINE PING_MBULK SET GET; do
        tr '\r' '\n' <"$out" | grep -Eq "^$test: [0-9.]+ requests per second" ||
            fail "$kind -P $depth: no figure for $test"
    done
    # An error reply makes redis-benchmark stop at once with "Error from server: ...".
    ! grep -q 'Error from server' "$out" || fail "$kind -P $depth: error replies"
    # redis-benchmark asks `CONFIG GET save` and `CONFIG GET appendonly` first.
    ! grep -q 'Could not fetch server CONFIG' "$out" || fail "$kind -P $depth: CONFIG GET unanswered"
}

# A 1 MiB random value through SET (redis-cli -x: the last argument from stdin) and GET.
check_round_trip() {
    local key="real-clients:$$:$RANDOM" reply sent got size
    local cli=(timeout 20 redis-cli -h "$host" -p "$port")
    echo "== $kind: redis-cli SET/GET of a 1 MiB random value"
    head -c 1048576 /dev/urandom >"$tmp/value"
    reply=$("${cli[@]}" -x SET "$key" <"$tmp/value")
    [ "$reply" = OK ] || fail "$kind: SET of 1 MiB answered '${reply:0:80}'"
    if ! "${cli[@]}" GET "$key" >"$tmp/got"; then
        fail "$kind: GET of 1 MiB failed"
        return
    fi
    # redis-cli prints a value as it is (not a terminal: raw mode), then a newline.
    size=$(stat -c %s "$tmp/got")
    sent=$(sha256sum <"$tmp/value" | cut -d' ' -f1)
    got=$(head -c -1 "$tmp/got" | sha256sum | cut -d' ' -f1)
    echo "sent 1048576 bytes sha256 $sent"
    echo "got  $((size - 1)) bytes sha256 $got"
    [ "$sent" = "$got" ] || fail "$kind: the value came back changed"
}

check_redis() {
    need redis-benchmark redis-tools
    need redis-cli redis-tools
    # redis-benchmark spins until its timeout on a server it cannot reach or read: ask first.
    local reply
    reply=$(timeout 10 redis-cli -h "$host" -p "$port" PING 2>&1)
    if [ "$reply" != PONG ]; then
        fail "$kind: PING answered '${reply:0:80}'"
        return
    fi
    run_benchmark 1
    run_benchmark 16
    check_round_trip
}

case $kind in
    http | proxy-http) check_http ;;
    redis | proxy-redis) check_redis ;;
    *) usage ;;
esac

if [ "$failures" -ne 0 ]; then
    echo "$kind at $addr: $failures check(s) failed" >&2
    exit 1
fi
echo "$kind at $addr: all checks passed"
