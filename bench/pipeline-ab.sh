#!/bin/bash
# pipeline-ab.sh REV [ROUNDS]: the mem pipeline benchmarks of REV against the
# working tree, in one run: REV as it was built then (its own default.pgo, if
# it had one), the working tree without PGO and with cmd/gvs-dataplane/default.pgo
# (as gvs-dataplane is built). The binaries take turns ROUNDS times (default
# 5), so each sees the same machine; medians and minima in ns per packet,
# BenchmarkHarness (the benchmarks' own pool, copy and tx cost) beside them.
set -euo pipefail
rev=${1:?usage: bench/pipeline-ab.sh REV [ROUNDS]}
rounds=${2:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$tmp/old" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git -C "$root" worktree add --detach "$tmp/old" "$rev" >/dev/null 2>&1
pgo() { if [ -f "$1/cmd/gvs-dataplane/default.pgo" ]; then echo "-pgo=$1/cmd/gvs-dataplane/default.pgo"; else echo "-pgo=off"; fi; }
(cd "$tmp/old" && go test -c $(pgo "$tmp/old") -o "$tmp/old.test" ./dataplane/)
(cd "$root" && go test -c -pgo=off -o "$tmp/new.test" ./dataplane/)
(cd "$root" && go test -c $(pgo "$root") -o "$tmp/newpgo.test" ./dataplane/)
bench='^Benchmark(FullNATEstablishedIn|FullNATEstablishedOut|FullNATEstablishedMany|FullNATNewConn|ForwardIPv4|Harness)$'
for r in $(seq "$rounds"); do
	for b in old new newpgo; do
		"$tmp/$b.test" -test.run '^$' -test.bench "$bench" -test.benchtime 2000000x 2>/dev/null |
			awk -v b="$b" '/^Benchmark/ {print b, $1, $3}'
	done
done | python3 -c '
import sys, collections, statistics
d = collections.defaultdict(list)
for l in sys.stdin:
    b, name, ns = l.split()
    d[(name.split("-")[0].replace("Benchmark", ""), b)].append(float(ns))
names = sorted({k[0] for k in d})
print("| ns/packet, median [min] | %s | working tree | working tree, PGO |" % sys.argv[1])
print("|---|---|---|---|")
for n in names:
    row = ["%.0f [%.0f]" % (statistics.median(d[(n, b)]), min(d[(n, b)])) if d[(n, b)] else "–" for b in ("old", "new", "newpgo")]
    print("| %s | %s |" % (n, " | ".join(row)))
' "$rev"
