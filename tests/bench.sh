#!/bin/sh
# make bench: this stack (make run, without its own Prosody) beside Prosody's
# mod_bosh and mod_websocket, all in front of the same Prosody that peers.sh
# starts, and again in front of ejabberd beside ejabberd's own mod_bosh
# (--candidate-ejabberd): BOSH and WebSocket rows in one table, then the ratios the targets
# name, then sessiond's own memory per idle session (BOSH, then WebSocket), the CPU per
# message of each process (tests/bench_cpu.py), and the hop through HAProxy.
# BENCH_ARGS passes options to peers.sh, e.g. BENCH_ARGS='--sessions 200 --big 0'.
# BENCH_DIR is the shared bench folder (default ../shared/bench beside the checkout);
# BENCH_MEM_SESSIONS the sessions bench_mem.py holds (default 9000).
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
bench=$(cd "${BENCH_DIR:-$here/../shared/bench}" 2>/dev/null && pwd) || bench=
peers="$bench/peers.sh"
[ -n "$bench" ] && [ -f "$peers" ] || {
	echo "bench: ${BENCH_DIR:-$here/../shared/bench}/peers.sh not found (the shared bench folder; BENCH_DIR=)" >&2
	exit 1
}
ulimit -n "$(ulimit -Hn)"
mkdir -p "$here/build"
# A fresh session database, as the peers start fresh: rows of earlier runs
# (ended sessions are kept for ended_retention, a day) would make each run
# write into a bigger table than the last.
rm -f "$here/build/bench-run/sessions.db" "$here/build/bench-run/sessions.db-wal" \
	"$here/build/bench-run/sessions.db-shm"
table="$here/build/bench-table.txt"

# --ws: Prosody's mod_websocket (prosody-ws) and, from the "WebSocket endpoint:"
# line make run prints, ours (candidate-ws), with the same workloads.
status=0
bash "$peers" --candidate-ejabberd --ws --big 9000 ${BENCH_ARGS:-} \
	--candidate-cmd "cd '$here' && exec make --no-print-directory run PORT=15691 RUN_DIR='$here/build/bench-run' XMPP_DOMAIN=\$BENCH_XMPP_DOMAIN XMPP_SERVER=\$BENCH_XMPP_HOST:\$BENCH_XMPP_PORT" \
	>"$table" || status=$?
cat "$table"

# Ratios between rows of this run (columns of peers.sh's table: msgs/s is the
# 6th, rtt p50/p99 the 7th/8th, B/session the 11th).
echo
awk '
function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "n/a" : sprintf("%.2f", a / b) }
$2 ~ /^echo-/ && $6 ~ /^[0-9.]+$/ { rate[$1] = $6; p50[$1] = $7; p99[$1] = $8 }
$2 ~ /^idle-/ && $11 ~ /^[0-9]+$/ {
	n = substr($2, 6) + 0
	if (n >= big[$1]) { big[$1] = n; per[$1] = $11 }
}
END {
	print "Ratios (rows of this run):"
	printf "  echo msgs/s   candidate-ws / prosody-ws    %5s   (target: at least 1)\n", ratio(rate["candidate-ws"], rate["prosody-ws"])
	printf "  echo msgs/s   candidate / prosody-bosh     %5s\n", ratio(rate["candidate"], rate["prosody-bosh"])
	printf "  echo msgs/s   candidate / prosody-tcp      %5s   (target: at least 0.7)\n", ratio(rate["candidate"], rate["prosody-tcp"])
	printf "  echo msgs/s   candidate-ejb / ejabberd-bosh %4s   (target: at least 1)\n", ratio(rate["candidate-ejb"], rate["ejabberd-bosh"])
	printf "  echo msgs/s   candidate-ejb / ejabberd-tcp %5s\n", ratio(rate["candidate-ejb"], rate["ejabberd-tcp"])
	printf "  echo msgs/s   prosody-ws / prosody-tcp     %5s   (mod_websocket against raw c2s)\n", ratio(rate["prosody-ws"], rate["prosody-tcp"])
	printf "  echo msgs/s   candidate-ws / prosody-tcp   %5s\n", ratio(rate["candidate-ws"], rate["prosody-tcp"])
	printf "  echo msgs/s   candidate-ws / candidate     %5s   (our WebSocket against our BOSH)\n", ratio(rate["candidate-ws"], rate["candidate"])
	printf "  rtt p50       candidate-ws / prosody-ws    %5s   (lower is better)\n", ratio(p50["candidate-ws"], p50["prosody-ws"])
	printf "  rtt p99       candidate-ws / prosody-ws    %5s\n", ratio(p99["candidate-ws"], p99["prosody-ws"])
	printf "  B/session     candidate-ws / prosody-ws    %5s   (idle-%s, whole stack + Prosody)\n", ratio(per["candidate-ws"], per["prosody-ws"]), big["candidate-ws"]
}' "$table"

# sessiond's own memory per held session (the table above sums the whole stack and Prosody).
echo
cc -O2 -o "$here/build/boshload" "$bench/boshload.c"
n=${BENCH_MEM_SESSIONS:-9000}
python3 "$here/tests/bench_mem.py" "$here/build/boshload" "$n" || status=1
echo
python3 "$here/tests/bench_mem.py" "$here/build/boshload" "$n" --ws || status=1

# CPU per echo message, process by process, user and kernel apart.
echo
python3 "$here/tests/bench_cpu.py" "$here/build/boshload" "${BENCH_CPU_SECONDS:-20}" 50 || status=1

# The load balancer's hop: through HAProxy in front of three nodes, and one node directly.
echo
python3 "$here/tests/bench_cluster.py" "$here/build/boshload" "${BENCH_CLUSTER_ECHO:-50}" "${BENCH_CLUSTER_SECONDS:-20}" || status=1
exit $status
