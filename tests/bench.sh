#!/bin/sh
# make bench: this stack (make run, without its own Prosody) beside Prosody's
# mod_bosh, both in front of the same Prosody that peers.sh starts.
# BENCH_ARGS passes options to peers.sh, e.g. BENCH_ARGS='--sessions 200 --big 0'.
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
peers="$here/../shared/bench/peers.sh"
[ -f "$peers" ] || { echo "bench: $peers not found (the shared bench folder)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"
bash "$peers" --no-ejabberd --big 9000 ${BENCH_ARGS:-} \
	--candidate-cmd "cd '$here' && exec make --no-print-directory run PORT=15691 RUN_DIR='$here/build/bench-run' XMPP_DOMAIN=\$BENCH_XMPP_DOMAIN XMPP_SERVER=\$BENCH_XMPP_HOST:\$BENCH_XMPP_PORT"

# sessiond's own memory per held session (the table above sums the whole stack and Prosody).
echo
cc -O2 -o "$here/build/boshload" "$here/../shared/bench/boshload.c"
python3 "$here/tests/bench_mem.py" "$here/build/boshload" "${BENCH_MEM_SESSIONS:-9000}"

# The load balancer's hop: through HAProxy in front of three nodes, and one node directly.
python3 "$here/tests/bench_cluster.py" "$here/build/boshload" "${BENCH_CLUSTER_ECHO:-50}" "${BENCH_CLUSTER_SECONDS:-20}"
