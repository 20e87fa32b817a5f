#!/usr/bin/env bash
# bench/run.sh — what `make bench` runs. In one run on this machine it
# measures, with the same generator and sink (gvs-pktgen over AF_XDP):
#   - the kernel-side limit: zero-work XDP redirect between the LB
#     namespace's two veths (bench/xdpfwd);
#   - the userspace limit: a zero-work forwarder over GVS's AF_XDP driver
#     (bench/xskfwd), 1 and 2 queues;
#   - GVS FullNAT (gvs-dataplane, afxdp, adaptive idle; 1 and 2 workers):
#     UDP pps at 64 bytes, SYN-flood pps, TCP connections/s and concurrent
#     connections;
#   - nftables DNAT with conntrack in the same namespace, same traffic;
#   - haproxy (mode tcp) for connections/s;
# plus the pipeline micro benchmarks, and writes
# bench/results/<date>/report.md and chart.png. See docs/benchmarks.md.
#
# usage: bench/run.sh [--reps N] [--quick] [--only SYSTEMS] [--tests TESTS] [--no-micro] [--out DIR]
#        bench/run.sh --cleanup          remove a topology left by a killed run
#        bench/run.sh up | down | start SYSTEM | stop SYSTEM    (by hand, for debugging)
# SYSTEMS: xdp xsk1 xsk2 gvs1 gvs2 nft haproxy   TESTS: udp syn cps conc
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${GVS_BENCH_STATE:-/run/gvs-bench}
GO=${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}
TOOLS=$STATE/bin
GVS_BIN=${GVS_BIN:-$ROOT/bin}
REPS=3
ONLY="xdp xsk1 xsk2 gvs1 gvs2 nft haproxy"
TESTS="udp syn cps conc"
MICRO=1
QUICK=0
OUT=""
# CPUs: the generator and sink on GEN_CPUS, the system under test on
# SUT_CPU (GVS with 2 workers: SUT_CPUS2, sharing a core with the generator
# on a 2-core machine)
NCPU=$(nproc)
GEN_CPUS=${GEN_CPUS:-0}
SUT_CPU=${SUT_CPU:-$((NCPU > 1 ? 1 : 0))}
SUT_CPUS2=${SUT_CPUS2:-$([ "$NCPU" -ge 3 ] && echo "1,2" || echo "1,0")}
SUT_CPUS_MASK=$(printf '%x' $((1 << SUT_CPU)))
ALL_CPUS=$(seq -s, 0 $((NCPU - 1)))
GVS_CONN_CAPACITY=${GVS_CONN_CAPACITY:-2097152}
# durations (seconds) and sizes of the cells
UDP_S=5 SYN_S=4 CPS_S=4 CONC_CONNS=200000 CPS_CONCURRENCY=1024 WARM_S=1

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*"; }

wait_for() { # SECONDS CMD...
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}

. "$ROOT/bench/topo.sh"
. "$ROOT/bench/systems.sh"

deps() {
	local need=()
	command -v ip >/dev/null || need+=(iproute2)
	command -v ethtool >/dev/null || need+=(ethtool)
	command -v nft >/dev/null || need+=(nftables)
	command -v conntrack >/dev/null || need+=(conntrack)
	command -v haproxy >/dev/null || need+=(haproxy)
	command -v gnuplot >/dev/null || need+=(gnuplot-nox)
	if [ ${#need[@]} -gt 0 ]; then
		log "installing ${need[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq "${need[@]}" >/dev/null
	fi
}

build() {
	mkdir -p "$TOOLS"
	(cd "$ROOT" && "$GO" build -o "$TOOLS/" ./cmd/gvs-pktgen ./bench/xdpfwd ./bench/xskfwd ./bench/report)
	if [ ! -x "$GVS_BIN/gvs-dataplane" ] || [ ! -x "$GVS_BIN/ipvsadm" ]; then
		mkdir -p "$GVS_BIN"
		(cd "$ROOT" && "$GO" build -o "$GVS_BIN/" ./cmd/gvs-dataplane ./cmd/ipvsadm)
	fi
}

# every background process and the topology go, also on failure
cleanup() {
	local rc=$?
	set +e
	if [ -f "$STATE/pids" ]; then
		for n in $(awk '{print $2}' "$STATE/pids" | sort -u); do bg_stop "$n"; done
	fi
	if [ -f "$STATE/created" ]; then
		ip netns exec $NS_LB nft delete table ip gvsb_lb 2>/dev/null
		topo_down
	fi
	rm -f "$STATE/pids"
	return $rc
}

# pktgen arguments shared by every cell
pg_common() {
	echo --client-netns $NS_GEN --client-dev g0 --server-netns $NS_RS --server-dev r0 \
		--queues "$BENCH_QUEUES" --server-queues "$BENCH_QUEUES" --client-ip $GEN_IP --gw-mac "$L0_MAC" --clients $CLIENTS \
		--client-cpus "$GEN_CPUS" --server-cpus "$GEN_CPUS" --ring 4096 --frames 16384 \
		$(for rs in "${RS_IPS[@]}"; do echo --server-addrs "$rs"; done)
}

# pg_args TEST QUEUES: the mode-specific arguments of a test
pg_args() {
	case $1 in
	udp) echo udp --dst $VIP:$VIP_UDP_PORT --flows 16384 --size 64 --tx-queues "$2" --duration ${UDP_S}s --warmup ${WARM_S}s ;;
	syn) echo syn --dst $VIP:$VIP_TCP_PORT --tx-queues "$2" --duration ${SYN_S}s --warmup ${WARM_S}s ;;
	cps) echo tcp --dst $VIP:$VIP_TCP_PORT --tx-queues "$2" --concurrency $CPS_CONCURRENCY --duration ${CPS_S}s --warmup ${WARM_S}s ;;
	conc) echo tcp --dst $VIP:$VIP_TCP_PORT --tx-queues "$2" --hold --conns $CONC_CONNS --concurrency $CPS_CONCURRENCY --duration 20s --warmup 0s ;;
	esac
}

# cell SYSTEM TEST REP QUEUES: one measurement
cell() {
	local sys=$1 test=$2 rep=$3 q=$4
	local base=$OUT/raw/$sys-$test-$rep
	local args
	args="$(pg_args "$test" "$q") $(pg_common) --json $base.json"
	# the held connections of a concurrency cell end when the run does
	local extra=()
	[ "$test" = conc ] && extra=(--drain 1s)
	# through the XDP redirect (no NAT) the sink answers for the VIP itself:
	# the generator's own TCP ceiling
	[ "$sys" = xdp ] && [ "$test" = cps ] && extra+=(--server-addrs $VIP)
	# the XDP redirect runs in the sender's softirq on whatever CPU sends:
	# generate (and sink) on every CPU, else the row only measures one
	# CPU's worth of generator
	[ "$sys" = xdp ] && [ "$test" = udp ] && extra+=(--tx-queues "$BENCH_QUEUES" --client-cpus "$ALL_CPUS" --server-cpus "$ALL_CPUS")
	local cmd="gvs-pktgen $args ${extra[*]}"
	printf '%s\t%s\t%s\t%s\n' "$sys" "$test" "$rep" "$cmd" >>"$OUT/cells.tsv"
	local t0=$SECONDS mem0=""
	[ "$test" = conc ] && mem0=$(sys_memory "$sys")
	# shellcheck disable=SC2086
	if ! "$TOOLS/gvs-pktgen" $args "${extra[@]}" >"$base.txt" 2>&1; then
		log "  $sys $test #$rep FAILED: $(tail -3 "$base.txt")"
		return 0
	fi
	local headline
	headline=$(grep -E '^(arrived|connections/s|open at end) ' "$base.txt" | tr -s ' ' | paste -sd ';' -)
	log "  $sys $test #$rep ($((SECONDS - t0))s): $headline"
	if [ "$test" = conc ]; then
		case $sys in
		gvs*) echo "rss_kb_before=$mem0 rss_kb_after=$(sys_memory "$sys")" >"$base.mem" ;;
		nft) sys_memory "$sys" >"$base.mem" ;;
		esac
	fi
	return 0
}

# sys_memory SYSTEM: gvs: resident set of gvs-dataplane in kB; nft: the
# number of conntrack entries and the size of one
sys_memory() {
	case $1 in
	gvs*) awk -v n="$1" '$2==n{print $1}' "$STATE/pids" | while read -r p; do
		awk '/^VmRSS/{print $2}' /proc/"$p"/status 2>/dev/null
	done | sort -n | tail -1 ;;
	nft) echo "conntrack=$(ip netns exec $NS_LB conntrack -C 2>/dev/null) objsize=$(awk '$1=="nf_conntrack"{print $4}' /proc/slabinfo)" ;;
	esac
}

# tests of a system, with the worker/queue count the generator uses
system_tests() {
	case $1 in
	xdp) echo udp cps ;;
	xsk1 | xsk2) echo udp ;;
	gvs1 | gvs2 | nft) echo "$TESTS" ;;
	haproxy) echo cps ;;
	esac
}
system_queues() { case $1 in xsk2 | gvs2) echo 2 ;; *) echo 1 ;; esac }

start_system() {
	case $1 in
	xdp) xdp_start ;;
	xsk1) xsk_start 1 "$SUT_CPU" ;;
	xsk2) xsk_start 2 "$SUT_CPUS2" ;;
	gvs1) gvs_start 1 "$SUT_CPU" ;;
	gvs2) gvs_start 2 "$SUT_CPUS2" ;;
	nft) nft_start ;;
	haproxy) haproxy_start ;;
	*) die "unknown system $1 (xdp xsk1 xsk2 gvs1 gvs2 nft haproxy)" ;;
	esac
}

stop_system() {
	case $1 in
	xdp) xdp_stop ;;
	xsk1) xsk_stop 1 ;;
	xsk2) xsk_stop 2 ;;
	gvs1) gvs_stop 1 ;;
	gvs2) gvs_stop 2 ;;
	nft) nft_stop ;;
	haproxy) haproxy_stop ;;
	esac
}

# fresh state between cells that leave connections behind
reset_system() {
	case $1 in
	gvs*) stop_system "$1" && start_system "$1" ;;
	nft) nft_reset ;;
	esac
}

versions() {
	{
		echo "date: $(date -Iseconds)"
		echo "host: $(uname -srm)"
		echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') × $NCPU"
		echo "memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
		echo "go: $("$GO" version | cut -d' ' -f3)"
		echo "gvs: $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)"
		echo "nftables: $(nft --version 2>/dev/null | head -1)"
		echo "haproxy: $(haproxy -v 2>/dev/null | head -1)"
		echo "gnuplot: $(gnuplot --version 2>/dev/null)"
		echo "cpu pinning: generator and sink on CPU $GEN_CPUS; system under test on CPU $SUT_CPU (2-worker GVS and 2-queue xskfwd: CPUs $SUT_CPUS2; nftables and haproxy: receive processing steered there with RPS mask $SUT_CPUS_MASK, haproxy's thread pinned there); XDP redirect UDP row: generator and sink on CPUs $ALL_CPUS (the redirect runs in the sender's softirq)"
		echo "nf_conntrack_max: $(sysctl -n net.netfilter.nf_conntrack_max 2>/dev/null || echo n/a)"
		echo "reps: $REPS"
	} >"$OUT/env.txt"
}

main() {
	while [ $# -gt 0 ]; do
		case $1 in
		--reps) REPS=$2; shift 2 ;;
		--quick) QUICK=1; REPS=1; UDP_S=3 SYN_S=3 CPS_S=3 CONC_CONNS=50000; shift ;;
		--only) ONLY=$2; shift 2 ;;
		--tests) TESTS=$2; shift 2 ;;
		--no-micro) MICRO=0; shift ;;
		--out) OUT=$2; shift 2 ;;
		--cleanup) cleanup; exit 0 ;;
		up) deps; build; trap 'echo "bench: up failed" >&2; cleanup' ERR; topo_up; trap - ERR; exit 0 ;;
		down) cleanup; exit 0 ;;
		start) topo_load; OUT=${OUT:-$STATE/manual}; mkdir -p "$OUT"; start_system "$2"; exit 0 ;;
		stop) topo_load; stop_system "$2"; exit 0 ;;
		*) die "unknown argument $1 (see the header of $0)" ;;
		esac
	done
	[ "$(id -u)" = 0 ] || die "needs root (network namespaces, XDP)"
	[ "$REPS" -ge 1 ] || die "--reps $REPS: at least 1"
	local t_start=$SECONDS
	OUT=${OUT:-$ROOT/bench/results/$(date +%Y-%m-%d-%H%M%S)}
	mkdir -p "$OUT/raw"
	: >"$OUT/cells.tsv"
	deps
	log "building"
	build
	versions
	trap cleanup EXIT
	trap 'exit 130' INT TERM

	if [ "$MICRO" = 1 ]; then
		log "micro benchmarks (go test -bench ./dataplane/)"
		echo "go test -run '^\$' -bench . -benchmem ./dataplane/" >"$OUT/micro.cmd"
		(cd "$ROOT" && "$GO" test -run '^$' -bench . -benchmem ./dataplane/) >"$OUT/micro.txt" 2>&1 ||
			log "micro benchmarks failed (see $OUT/micro.txt)"
	fi

	log "topology up"
	topo_up
	topo_load
	for sys in $ONLY; do
		local tests=() t
		for t in $(system_tests "$sys"); do
			case " $TESTS " in *" $t "*) tests+=("$t") ;; esac
		done
		[ ${#tests[@]} -gt 0 ] || continue
		log "$sys: ${tests[*]}"
		start_system "$sys"
		cp "$STATE/setup-$sys.txt" "$OUT/setup-$sys.txt"
		local first=1
		for t in "${tests[@]}"; do
			[ $first = 1 ] || reset_system "$sys"
			first=0
			for rep in $(seq 1 "$REPS"); do
				if [ "$t" = conc ] && [ "$rep" -gt 1 ]; then reset_system "$sys"; fi
				cell "$sys" "$t" "$rep" "$(system_queues "$sys")"
			done
		done
		stop_system "$sys"
	done
	cleanup
	trap - EXIT

	log "report"
	"$TOOLS/report" --dir "$OUT" --reps "$REPS" --elapsed $((SECONDS - t_start))
	log "done in $((SECONDS - t_start))s: $OUT/report.md"
}

main "$@"
