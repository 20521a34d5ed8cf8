#!/bin/sh
# run.sh SECONDS FUZZER... - runs each libFuzzer binary for SECONDS with the
# seeds in tests/fuzz/seeds/NAME (if any) and a scratch corpus; prints
# "fuzz: N passed, N failed". A crash leaves its input in build/fuzz/.
seconds=$1
shift
here=$(dirname "$0")
pass=0
fail=0
for f in "$@"; do
	name=$(basename "$f" | sed 's/^fuzz_//')
	corpus=$(dirname "$f")/corpus-$name
	mkdir -p "$corpus"
	seeds=$here/seeds/$name
	[ -d "$seeds" ] || seeds=
	if ASAN_OPTIONS=detect_leaks=1 "$f" -max_total_time="$seconds" -max_len=8192 -timeout=10 \
		-artifact_prefix="$(dirname "$f")/crash-$name-" "$corpus" $seeds >"$corpus.log" 2>&1; then
		pass=$((pass + 1))
		echo "ok    fuzz_$name ($(grep -o 'Done [0-9]* runs' "$corpus.log" | tail -1))"
	else
		fail=$((fail + 1))
		echo "FAIL  fuzz_$name"
		tail -30 "$corpus.log"
	fi
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
