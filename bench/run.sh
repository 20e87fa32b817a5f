#!/usr/bin/env bash
# bench/run.sh — what `make bench` runs. In one run on this machine it
# measures, with the same generator and sink (gvs-pktgen; UDP generated with
# XDP live frames so it can offer several times what a userspace forwarder
# takes, TCP over AF_XDP; the sink over AF_XDP):
#   - the kernel-side limit: zero-work XDP redirect between the LB
#     namespace's two veths (bench/xdpfwd);
#   - the userspace limit: a zero-work forwarder over GVS's AF_XDP driver
#     (bench/xskfwd, tuned: adaptive idle, SCHED_FIFO, large rings), 1 and 2 queues;
#   - GVS FullNAT (gvs-dataplane, afxdp, its defaults; 1 and 2 workers; and
#     1 worker with workers.rt_priority 50): UDP pps at 64 bytes, SYN-flood
#     pps, TCP connections/s and concurrent connections;
#   - GVS's port drivers side by side, 1 worker, rt_priority 0 as gvs1
#     (afxdp): the dpdk build over DPDK's net_af_packet vdevs (gvsdpdk1),
#     over net_af_xdp vdevs (gvsdpdkxdp1, not in the default set: the PMD
#     does not start on these veths, docs/benchmarks.md), and the afpacket
#     driver (gvsafp1, the same kernel path as net_af_packet);
#   - nftables DNAT with conntrack in the same namespace, same traffic;
#   - haproxy (mode tcp) for connections/s;
# in three CPU placements:
#   sep   generator and sink on one CPU, the system under test on another;
#   one   generator, system under test and sink on the same CPU (the whole
#         path's cost per packet);
#   free  nothing pinned (the scheduler decides);
# with the cells:
#   udp   flood, forwarded pps;            syn   SYN flood;
#   cps   gvs-pktgen tcp connections/s;     conc  concurrent connections;
#   over  overload curve: the system's capacity (throughput search), then
#         forwarded pps at 1x, 2x and 5x that capacity offered;
#   wrk   connections/s of real Linux TCP: wrk (one connection per request)
#         through the balancer to nginx;
#   tcp   throughput of one established Linux TCP stream (iperf3) through
#         the system (not in the default set: XDP fast path cells);
#   synproxy  SYN flood at a SYN-proxy service (-j enable), GVS 1 worker:
#         its UDP rate (the udp cell), SYN cookies answered per second
#         (SYN-ACKs back at the generator, cross-checked with the
#         dataplane's lb_synproxy_cookies) and an established UDP stream's
#         rate without and during the flood (synproxy_rep below);
# plus the pipeline micro benchmarks, and writes
# bench/results/<date>/report.md and chart.png. See docs/benchmarks.md.
#
# usage: bench/run.sh [--reps N] [--quick] [--only SYSTEMS] [--tests TESTS] [--places PLACES] [--no-micro] [--out DIR]
#        bench/run.sh --cleanup          remove a topology left by a killed run
#        bench/run.sh up | down | start SYSTEM | stop SYSTEM    (by hand, for debugging; placement sep)
# SYSTEMS: xdp xsk1 xsk1pp xsk1w xsk2 gvs1 gvs1rt gvs1rtpp gvs1rtref gvs2 gvsdpdk1 gvsdpdkxdp1 gvsafp1 gvs1xdp gvs2xdp nft haproxy   TESTS: udp syn cps conc over wrk synproxy tcp   PLACES: sep one free
# The SYN-proxy cell alone (a few minutes):
#        bench/run.sh --only gvs1 --tests synproxy --places sep --no-micro
# The port drivers alone (a few minutes; dpdk systems need libdpdk-dev):
#        bench/run.sh --only "xsk1 gvs1 gvsdpdk1 gvsafp1" --tests "udp over" --places "sep one" --no-micro
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${GVS_BENCH_STATE:-/run/gvs-bench}
GO=${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}
TOOLS=$STATE/bin
GVS_BIN=${GVS_BIN:-$ROOT/bin}
REPS=3
ONLY="xdp xsk1 xsk2 gvs1 gvs1rt gvs2 gvsdpdk1 gvsafp1 nft haproxy"
TESTS="udp syn cps conc over wrk synproxy"
PLACES="sep one free"
MICRO=1
QUICK=0
OUT=""
NCPU=$(nproc)
ALL_CPUS=$(seq -s, 0 $((NCPU - 1)))
# CPUs of the separate-core placement: the generator and sink on GEN_CPU,
# the system under test on SUT_CPU (2 workers: SUT_CPUS2, sharing a core
# with the generator on a 2-core machine)
GEN_CPU=${GEN_CPU:-0}
SEP_SUT_CPU=${SUT_CPU:-$((NCPU > 1 ? 1 : 0))}
SEP_SUT_CPUS2=${SUT_CPUS2:-$([ "$NCPU" -ge 3 ] && echo "1,2" || echo "1,0")}
# the generator of the udp and overload cells: xdp-live or port (AF_XDP)
GEN=${GEN:-xdp-live}
GVS_CONN_CAPACITY=${GVS_CONN_CAPACITY:-2097152}
# durations (seconds) and sizes of the cells
UDP_S=5 SYN_S=4 CPS_S=4 CONC_CONNS=200000 CPS_CONCURRENCY=1024 WARM_S=1
OVER_S=3 OVER_TRIAL=1s OVER_STEPS=6 OVER_TOLERANCE=1 OVER_FACTORS="1 2 5"
WRK_S=5 WRK_CONNS=64 TCP_S=5
# the synproxy cell's established stream: this share of the same rep's UDP
# rate (synp-udp), over SYNP_STREAM_FLOWS flows
SYNP_STREAM_SHARE=${SYNP_STREAM_SHARE:-0.1} SYNP_STREAM_FLOWS=1024
# PERF=1 profiles the system under test's CPU during the udp and over-5x
# cells (perf record -C SUT_CPU): where its time goes, kernel or its own code
PERF=${PERF:-1}
# PERF_GRAPH=1 records call graphs too and keeps raw/…perf.data; the report
# then splits each cell's CPU time per packet into the veth receive run on
# the system's CPU (the sink's, raised by the system's transmit), the
# system's own code and the rest of the kernel
# PERF_FREQ: perf record's sampling frequency (default 999 Hz)
# PERF_STAT=EVENTS also counts EVENTS per CPU over the same window
# (perf stat -a -A -e EVENTS; raw/…stat), e.g. the wake-ups a cell causes:
# PERF_STAT=sched:sched_waking,irq_vectors:reschedule_entry,syscalls:sys_enter_sendto
# XSK_WORK_NS: the xsk1w system's spinning per packet (default 130 ns)
# SUT_RX=own runs the receive of the system's ports on the system's CPU;
# the default, sender, leaves it where the veth runs it, on the
# generator's (below, sut_rx_own)
# WBURST=N runs the GVS systems with workers.burst N (unset: the default, 64)
# UDP_FLOWS: the flows of the udp and over cells (client address × port)
UDP_FLOWS=${UDP_FLOWS:-16384}
# SINK_NAP: gvs-pktgen --idle-sleep (a sink with nothing to receive naps this
# long instead of sleeping in poll(); 0, the default: poll). A nap leaves
# the generator more of their shared CPU but loses packets in the sink's
# own ring at paced rates (docs/benchmarks.md, "The generator's share")
SINK_NAP=${SINK_NAP:-0}

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

# place_set PLACE: the CPU variables of a placement
place_set() {
	PLACE=$1
	case $1 in
	sep) GEN_CPUS=$GEN_CPU SUT_CPU=$SEP_SUT_CPU SUT_CPUS2=$SEP_SUT_CPUS2 ;;
	one) GEN_CPUS=$GEN_CPU SUT_CPU=$GEN_CPU SUT_CPUS2="" ;;
	free) GEN_CPUS="" SUT_CPU="" SUT_CPUS2="" ;;
	*) die "unknown placement $1 (sep one free)" ;;
	esac
	SUT_CPUS_MASK=0
	[ -n "$SUT_CPU" ] && SUT_CPUS_MASK=$(printf '%x' $((1 << SUT_CPU)))
	return 0
}
place_desc() {
	case $1 in
	sep) echo "separate cores: generator and sink on CPU $GEN_CPU, system under test on CPU $SEP_SUT_CPU (2 workers/queues: CPUs $SEP_SUT_CPUS2); nftables/haproxy: receive processing steered there with RPS, haproxy's thread pinned there; wrk and nginx on CPU $GEN_CPU" ;;
	one) echo "one core: generator, sink and system under test all on CPU $GEN_CPU (nftables/haproxy: RPS to it)" ;;
	free) echo "unpinned: generator, sink, system under test, wrk and nginx left to the scheduler on CPUs $ALL_CPUS (no RPS)" ;;
	esac
}

deps() {
	local need=()
	command -v ip >/dev/null || need+=(iproute2)
	command -v ethtool >/dev/null || need+=(ethtool)
	command -v nft >/dev/null || need+=(nftables)
	command -v conntrack >/dev/null || need+=(conntrack)
	command -v haproxy >/dev/null || need+=(haproxy)
	command -v gnuplot >/dev/null || need+=(gnuplot-nox)
	command -v wrk >/dev/null || need+=(wrk)
	command -v iperf3 >/dev/null || need+=(iperf3)
	command -v nginx >/dev/null || need+=(nginx-light)
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
	if [ ! -x "$GVS_BIN/gvs-dataplane" ] || [ ! -x "$GVS_BIN/ipvsadm" ] || [ ! -x "$GVS_BIN/dpip" ]; then
		mkdir -p "$GVS_BIN"
		(cd "$ROOT" && "$GO" build -o "$GVS_BIN/" ./cmd/gvs-dataplane ./cmd/ipvsadm ./cmd/dpip)
	fi
	# the dpdk systems run the dpdk build (make dpdk); without DPDK they go
	case " $ONLY " in
	*" gvsdpdk"*)
		if pkg-config --exists libdpdk 2>/dev/null; then
			mkdir -p "$GVS_BIN/dpdk"
			(cd "$ROOT" && "$GO" build -tags dpdk -o "$GVS_BIN/dpdk/" ./cmd/gvs-dataplane)
		else
			log "libdpdk-dev is missing (apt-get install libdpdk-dev): the dpdk systems are skipped"
			ONLY=$(echo " $ONLY " | sed 's/ gvsdpdk[a-z0-9]*//g')
		fi
		;;
	esac
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
		$([ -n "$GEN_CPUS" ] && echo --client-cpus "$GEN_CPUS" --server-cpus "$GEN_CPUS") --ring 4096 --frames 16384 \
		$(for rs in "${RS_IPS[@]}"; do echo --server-addrs "$rs"; done) \
		$([ "$SINK_NAP" != 0 ] && echo --idle-sleep "$SINK_NAP")
}

# pg_args TEST QUEUES [RATE]: the mode-specific arguments of a test
pg_args() {
	local udp="udp --dst $VIP:$VIP_UDP_PORT --flows $UDP_FLOWS --size 64 --gen $GEN --tx-queues $2"
	case $1 in
	udp) echo "$udp --duration ${UDP_S}s --warmup ${WARM_S}s" ;;
	over-cap) echo "$udp --search --loss-tolerance $OVER_TOLERANCE --trial $OVER_TRIAL --steps $OVER_STEPS --warmup ${WARM_S}s" ;;
	over-*) echo "$udp --rate $3 --duration ${OVER_S}s --warmup ${WARM_S}s" ;;
	syn) echo syn --dst $VIP:$VIP_TCP_PORT --tx-queues "$2" --duration ${SYN_S}s --warmup ${WARM_S}s ;;
	# the synproxy cell: the udp cell's method; the flood from random
	# sources (every address of the client prefix, random ports) at the
	# SYN-proxy service; the established stream alone (udp mode, the port
	# generator as in syn mode, the stream's flows) and during the flood
	synp-udp) echo "$udp --duration ${UDP_S}s --warmup ${WARM_S}s" ;;
	synp-flood) echo syn --dst $VIP:$VIP_TCP_PORT --client-addrs 0 --tx-queues "$2" --duration ${SYN_S}s --warmup ${WARM_S}s ;;
	synp-base) echo udp --dst $VIP:$VIP_UDP_PORT --client-addrs 0 --flows $SYNP_STREAM_FLOWS --size 64 --gen port --rate "$3" \
		--tx-queues "$2" --duration ${SYN_S}s --warmup ${WARM_S}s ;;
	synp-mixed) echo syn --dst $VIP:$VIP_TCP_PORT --client-addrs 0 --stream-dst $VIP:$VIP_UDP_PORT --stream-flows $SYNP_STREAM_FLOWS \
		--stream-rate "$3" --tx-queues "$2" --duration ${SYN_S}s --warmup ${WARM_S}s ;;
	cps) echo tcp --dst $VIP:$VIP_TCP_PORT --tx-queues "$2" --concurrency $CPS_CONCURRENCY --duration ${CPS_S}s --warmup ${WARM_S}s ;;
	conc) echo tcp --dst $VIP:$VIP_TCP_PORT --tx-queues "$2" --hold --conns $CONC_CONNS --concurrency $CPS_CONCURRENCY --duration 20s --warmup 0s ;;
	esac
}

# cell SYSTEM TEST REP QUEUES [RATE]: one gvs-pktgen measurement
cell() {
	local sys=$1 test=$2 rep=$3 q=$4 rate=${5:-}
	local base=$OUT/raw/$PLACE-$sys-$test-$rep
	local args
	args="$(pg_args "$test" "$q" "$rate") $(pg_common) --json $base.json"
	# the held connections of a concurrency cell end when the run does
	local extra=()
	[ "$test" = conc ] && extra=(--drain 1s)
	# through the XDP redirect (no NAT) the sink answers for the VIP itself:
	# the generator's own TCP ceiling
	[ "$sys" = xdp ] && [ "$test" = cps ] && extra+=(--server-addrs $VIP)
	# the XDP redirect runs in the sender's softirq on whatever CPU sends:
	# in the separate placement generate (and sink) on every CPU, else the
	# row only measures one CPU's worth of generator. So does GVS's XDP fast
	# path once its flows are offloaded: gvs2xdp (a worker and a queue per
	# CPU, so that every queue's first packets reach a worker) gets the same
	if [[ $sys == xdp || $sys == gvs2xdp ]] && [ "$PLACE" = sep ] && [[ $test == udp || $test == over-* ]]; then
		extra+=(--tx-queues "$BENCH_QUEUES" --client-cpus "$ALL_CPUS" --server-cpus "$ALL_CPUS")
		[ "$GEN" = xdp-live ] && extra+=(--gen-threads "$NCPU")
	fi
	local cmd="gvs-pktgen $args ${extra[*]}"
	printf '%s\t%s\t%s\t%s\t%s\n' "$PLACE" "$sys" "$test" "$rep" "$cmd" >>"$OUT/cells.tsv"
	local t0=$SECONDS mem0="" perfpid=""
	[ "$test" = conc ] && mem0=$(sys_memory "$sys")
	dp_before "$sys" "$base"
	if [ "$PERF" = 1 ] && [ -n "$SUT_CPU" ] && [[ $test == udp || $test == over-5x || $test == synp-udp || $test == synp-flood ]] && command -v perf >/dev/null; then
		# the measurement window: after the warm-up, until generation ends
		local secs=$UDP_S
		[ "$test" = over-5x ] && secs=$OVER_S
		[ "$test" = synp-flood ] && secs=$SYN_S
		(sleep "$WARM_S" && exec perf record -q ${PERF_GRAPH:+-g} -o "$base.perf.data" -C "$SUT_CPU" -F "${PERF_FREQ:-999}" -- sleep $((secs - WARM_S))) >/dev/null 2>&1 &
		perfpid=$!
		[ -n "${PERF_STAT:-}" ] && (sleep "$WARM_S" && exec perf stat -a -A -e "$PERF_STAT" -o "$base.stat" -- sleep $((secs - WARM_S))) >/dev/null 2>&1 &
		echo "perf record ${PERF_GRAPH:+-g }-o $base.perf.data -C $SUT_CPU -F ${PERF_FREQ:-999} -- sleep $((secs - WARM_S)) (from the end of the warm-up); perf report --sort dso[,sym]" >"$base.perf.cmd"
	fi
	# shellcheck disable=SC2086
	if ! "$TOOLS/gvs-pktgen" $args "${extra[@]}" >"$base.txt" 2>&1; then
		log "  $PLACE $sys $test #$rep FAILED: $(tail -3 "$base.txt")"
		[ -n "$perfpid" ] && wait "$perfpid" 2>/dev/null
		rm -f "$base.dp0"
		return 0
	fi
	if [ -n "$perfpid" ]; then
		wait "$perfpid" 2>/dev/null || true
		if [ -f "$base.perf.data" ]; then
			# self time only: with call graphs perf report would add each
			# symbol's callees (--children) and the shares would not add up
			perf report -q -i "$base.perf.data" --no-children -g none --sort dso --stdio >"$base.perf-dso.txt" 2>/dev/null || true
			perf report -q -i "$base.perf.data" --no-children -g none --sort dso,sym --stdio --percent-limit 1 >"$base.perf-sym.txt" 2>/dev/null || true
			# PERF_GRAPH=1: call graphs, kept (perf report -i FILE -G), and
			# each symbol with its callees, for the report's split of the
			# CPU time per packet (the veth receive run on this CPU)
			if [ -n "${PERF_GRAPH:-}" ]; then
				perf report -q -i "$base.perf.data" --children -g none --sort sym --stdio --percent-limit 1 >"$base.perf-children.txt" 2>/dev/null || true
			else
				rm -f "$base.perf.data"
			fi
		fi
	fi
	local headline
	headline=$(grep -E '^(arrived|throughput|connections/s|open at end|generator|SYN-ACKs|stream) ' "$base.txt" | tr -s ' ' | paste -sd ';' -)
	log "  $PLACE $sys $test #$rep ($((SECONDS - t0))s): $headline"
	# how the workers spent the cell: loops, and how many of them slept
	dp_after "$sys" "$base" '^(loops|idle-loops|sleeps|packets|rx_packets|drop_lb_redirect_full|busy_ns|wall_ns)='
	grep '^warning:' "$base.txt" | sed 's/^/bench:     /' || true
	if [ "$test" = conc ]; then
		case $sys in
		gvs*) echo "rss_kb_before=$mem0 rss_kb_after=$(sys_memory "$sys")" >"$base.mem" ;;
		nft) sys_memory "$sys" >"$base.mem" ;;
		esac
	fi
	return 0
}

# json_num FILE KEY: the first number under "KEY" in a pktgen JSON result
json_num() { sed -n "s/.*\"$2\": \([0-9.eE+-]*\).*/\1/p" "$1" | head -1; }

# over SYSTEM REP QUEUES: the overload curve — the capacity (the highest
# rate forwarded with at most OVER_TOLERANCE % loss), then fixed rates of
# OVER_FACTORS times it
over() {
	local sys=$1 rep=$2 q=$3 capf cap f
	cell "$sys" over-cap "$rep" "$q"
	capf=$OUT/raw/$PLACE-$sys-over-cap-$rep.json
	cap=$( [ -f "$capf" ] && json_num "$capf" throughput_pps || true)
	# forwards nothing within the tolerance: take what arrived under overload
	if [ -z "$cap" ] || [ "${cap%%.*}" = 0 ]; then cap=$( [ -f "$capf" ] && json_num "$capf" overload_pps || true); fi
	if [ -z "$cap" ] || [ "${cap%%.*}" = 0 ]; then
		log "  $PLACE $sys over #$rep: no capacity measured, no curve"
		return 0
	fi
	for f in $OVER_FACTORS; do
		cell "$sys" "over-${f}x" "$rep" "$q" "$(awk -v c="$cap" -v f="$f" 'BEGIN{printf "%.0f", c*f}')"
	done
}

# dp_counters FILE: the dataplane's counters summed over its workers
# (name=value per line), with the loop counters (loops, bursts, packets,
# idle-loops, sleeps)
dp_counters() {
	# busy: the workers' time in iterations with packets ("busy 1.5s"),
	# wall_ns: when this was read, workers: how many; busy_ns over wall_ns
	# and workers is their load (the report's "worker load"); imissed and
	# odropped: the ports' receive-ring and transmit drops (dpip -s link show)
	{
		"$GVS_BIN/dpip" -s worker show 2>/dev/null
		"$GVS_BIN/dpip" -s link show 2>/dev/null | awk 'h { print "port_imissed", $3; print "port_odropped", $4; h = 0 } $3 == "imissed" { h = 1 }'
	} |
		awk -v now="$(date +%s%N)" '/^worker [0-9]+:/ { s["workers"]++ }
			$1 == "loops" { for (i = 1; i < NF; i += 2) if ($(i + 1) ~ /^[0-9]+$/) s[$i] += $(i + 1); else if ($i == "busy") { v = $(i + 1); sub(/s$/, "", v); s["busy_ns"] += int(v * 1e9) }; next }
			NF == 2 && $2 ~ /^[0-9]+$/ { s[$1] += $2 } END { s["wall_ns"] = now; for (k in s) printf "%s=%.0f\n", k, s[k] }' | sort >"$1"
}

# dp_before SYSTEM BASE / dp_after SYSTEM BASE PATTERN: a GVS system's
# counters read before and after a cell (BASE.dp: what moved), and those
# matching PATTERN logged
dp_before() {
	[[ $1 == gvs* ]] && dp_counters "$2.dp0"
	return 0
}
dp_after() {
	[[ $1 == gvs* ]] || return 0
	dp_counters "$2.dp1"
	dp_delta "$2.dp0" "$2.dp1" "$2.dp"
	rm -f "$2.dp0" "$2.dp1"
	log "    workers: $(tr ' ' '\n' <"$2.dp" | grep -E "$3" | paste -sd ' ' -)"
}

# dp_delta BEFORE AFTER OUT: the counters that moved, "name=delta ..."
dp_delta() {
	# (workers: as after; %.0f, since %d is 32-bit in some awks)
	awk -F= 'NR == FNR { b[$1] = $2; next } $1 == "workers" { printf "%s=%s ", $1, $2; next }
		$2 - b[$1] != 0 { printf "%s=%.0f ", $1, $2 - b[$1] } END { print "" }' "$1" "$2" >"$3"
}

# synp_cell SYSTEM TEST REP QUEUES [RATE]: a cell, with what the SYN proxy
# counted in it
synp_cell() {
	cell "$@"
	log "    dataplane: $(grep -o 'lb_synproxy_[a-z]*=[0-9]*' "$OUT/raw/$PLACE-$1-$2-$3.dp" | paste -sd ' ' -)"
}

# synproxy_rep SYSTEM REP: one repetition of the synproxy cell, all on the
# same running GVS: (a) its UDP rate as the udp cell measures it; (b) the
# SYN flood at the SYN-proxy service: SYN-ACKs back at the generator per
# second; (c) an established UDP stream at SYNP_STREAM_SHARE × (a)'s rate,
# alone and then during the same flood. The report divides (b) by (a) and
# the stream's rate during the flood by its rate alone.
synproxy_rep() {
	local sys=$1 rep=$2 q rate udpf
	q=$(system_queues "$sys")
	cell "$sys" synp-udp "$rep" "$q"
	synp_cell "$sys" synp-flood "$rep" "$q"
	udpf=$OUT/raw/$PLACE-$sys-synp-udp-$rep.json
	rate=$( [ -f "$udpf" ] && json_num "$udpf" arrived_pps || true)
	# (no UDP rate measured: a fixed 20 kpps, and the report has no (b) ÷ (a) for the rep)
	rate=$(awk -v r="${rate:-0}" -v s="$SYNP_STREAM_SHARE" 'BEGIN { r *= s; if (r < 1000) r = 20000; printf "%.0f", r }')
	cell "$sys" synp-base "$rep" "$q" "$rate"
	synp_cell "$sys" synp-mixed "$rep" "$q" "$rate"
}

# synproxy_on SYSTEM: the TCP service becomes a SYN-proxy service
synproxy_on() {
	echo "# the synproxy cell only (after the set-up above):" >>"$STATE/setup-$1.txt"
	run_logged "$1" "$GVS_BIN/ipvsadm" -E -t $VIP:$VIP_TCP_PORT -s rr -j enable
	cp "$STATE/setup-$1.txt" "$OUT/setup-$PLACE-$1.txt"
}

# wrk_cell SYSTEM REP: connections/s of wrk through the balancer to nginx,
# one connection per request (Connection: close), wrk and nginx on the
# generator's CPUs (unpinned in the free placement)
wrk_cell() {
	local sys=$1 rep=$2 base=$OUT/raw/$PLACE-$1-wrk-$2 pin=()
	[ -n "$GEN_CPUS" ] && pin=(taskset -c "$GEN_CPUS")
	local cmd="ip netns exec $NS_GEN ${pin[*]} wrk -t1 -c$WRK_CONNS -d${WRK_S}s -H 'Connection: close' --latency http://$VIP:$VIP_TCP_PORT/"
	printf '%s\t%s\t%s\t%s\t%s\n' "$PLACE" "$sys" wrk "$rep" "$cmd (nginx: nginx.conf, 1 worker$([ -n "$GEN_CPUS" ] && echo " on CPU $GEN_CPUS"))" >>"$OUT/cells.tsv"
	# /proc/stat before and after: where each CPU's time went (the report
	# reads what wrk and nginx used of theirs)
	cat /proc/stat >"$base.stat0"
	if ! ip netns exec $NS_GEN "${pin[@]}" wrk -t1 -c$WRK_CONNS -d${WRK_S}s -H 'Connection: close' --latency "http://$VIP:$VIP_TCP_PORT/" >"$base.wrk" 2>&1; then
		log "  $PLACE $sys wrk #$rep FAILED: $(tail -3 "$base.wrk")"
		return 0
	fi
	cat /proc/stat >"$base.stat1"
	log "  $PLACE $sys wrk #$rep: $(grep -E 'Requests/sec|Socket errors|Non-2xx' "$base.wrk" | tr -s ' ' | paste -sd ';' -)"
}

# tcp_cell SYSTEM REP: one iperf3 stream (the kernel's TCP on both ends)
# through the system for TCP_S seconds, client and server on the
# generator's CPUs: Mbit/s received and the sender's retransmissions
tcp_cell() {
	local sys=$1 rep=$2 base=$OUT/raw/$PLACE-$1-tcp-$2 pin=()
	[ -n "$GEN_CPUS" ] && pin=(taskset -c "$GEN_CPUS")
	local cmd="ip netns exec $NS_GEN ${pin[*]} iperf3 -c $VIP -p $VIP_TCP_PORT -t $TCP_S --connect-timeout 3000 -J"
	printf '%s\t%s\t%s\t%s\t%s\n' "$PLACE" "$sys" tcp "$rep" "$cmd (server: iperf3 -s in $NS_RS$([ -n "$GEN_CPUS" ] && echo " on CPU $GEN_CPUS"))" >>"$OUT/cells.tsv"
	dp_before "$sys" "$base"
	if ! timeout $((TCP_S + 20)) ip netns exec $NS_GEN "${pin[@]}" iperf3 -c $VIP -p $VIP_TCP_PORT -t "$TCP_S" --connect-timeout 3000 -J >"$base.iperf" 2>&1; then
		log "  $PLACE $sys tcp #$rep FAILED: $(tail -3 "$base.iperf")"
		rm -f "$base.dp0"
		return 0
	fi
	log "  $PLACE $sys tcp #$rep: $(awk '/"sum_received"/{r=1} r&&/"bits_per_second"/{gsub(/[,]/,"",$2); printf "%.0f Mbit/s received", $2/1e6; exit}' "$base.iperf"); $(awk '/"sum_sent"/{s=1} s&&/"retransmits"/{gsub(/[,]/,"",$2); print $2 " retransmissions"; exit}' "$base.iperf")"
	# what the worker forwarded itself, what it offloaded, what it dropped
	dp_after "$sys" "$base" '^(lb_in|lb_out|lb_xdp_[a-z_]*|drop_[a-z_0-9]*|port_imissed|port_odropped|busy_ns|wall_ns)='
}

# iperf_start SYSTEM / iperf_stop SYSTEM: the iperf3 server of the tcp
# cells in the real servers' namespace, on the real servers' TCP port; the
# zero-work XDP redirect translates nothing, so there the server owns the
# VIP and listens on the VIP's port. g0 and r0 run GRO for these cells: a
# frame an XDP program redirects into a veth is dropped unless the peer
# runs NAPI (GRO or an XDP program of its own), and the kernel's TCP on
# g0 and r0 has no XDP program (the generator's and sink's cells do)
iperf_start() {
	local port=$RS_PORT_TCP pin=()
	ip netns exec $NS_GEN ethtool -K g0 gro on >/dev/null
	ip netns exec $NS_RS ethtool -K r0 gro on >/dev/null
	[ -n "$GEN_CPUS" ] && pin=(taskset -c "$GEN_CPUS")
	if [ "$1" = xdp ]; then
		port=$VIP_TCP_PORT
		ip -n $NS_RS addr add $VIP/32 dev r0
	fi
	ip netns exec $NS_RS "${pin[@]}" iperf3 -s -p "$port" -D --pidfile "$STATE/iperf3.pid"
	local i
	for i in $(seq 50); do
		ip netns exec $NS_RS ss -Hltn "sport = :$port" | grep -q . && return 0
		sleep 0.1
	done
	die "iperf3 server did not start on port $port"
}
iperf_stop() {
	[ -f "$STATE/iperf3.pid" ] && kill "$(cat "$STATE/iperf3.pid")" 2>/dev/null
	rm -f "$STATE/iperf3.pid"
	ip netns exec $NS_GEN ethtool -K g0 gro off >/dev/null
	ip netns exec $NS_RS ethtool -K r0 gro off >/dev/null
	[ "$1" = xdp ] && ip -n $NS_RS addr del $VIP/32 dev r0 2>/dev/null
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

# system_tests SYSTEM: what a system is measured with
system_tests() {
	case $1 in
	xdp) echo udp cps over tcp ;;
	xsk1 | xsk1pp | xsk1w) echo udp over ;;
	xsk2) echo udp ;;
	gvs1) echo udp syn cps conc over wrk synproxy tcp ;;
	nft) echo udp syn cps conc over wrk tcp ;;
	gvs1rt) echo udp syn cps over wrk synproxy ;;
	gvs1rtref) echo udp syn cps over wrk ;; # before/after: what gvs1rt has but the SYN-proxy cell
	gvs1rtpp) echo udp over ;;
	gvs2) echo udp syn cps conc ;;
	gvsdpdk1 | gvsdpdkxdp1 | gvsafp1) echo udp over ;;
	gvs1xdp) echo udp cps wrk over tcp ;;
	gvs2xdp) echo udp over ;;
	haproxy) echo cps wrk ;;
	esac
}
# place_tests PLACE: what a placement measures
place_tests() {
	case $1 in
	sep) echo udp syn cps conc over wrk synproxy tcp ;;
	one) echo over tcp ;;
	free) echo cps wrk ;;
	esac
}
system_queues() { case $1 in xsk2 | gvs2 | gvs2xdp) echo 2 ;; *) echo 1 ;; esac }

# SUT_RX: who pays for the veth receive of the system's ports l0 and l1 in
# the separate placement. A veth runs its peer's receive (NAPI: the XDP
# program, and the copy into the UMEM for an AF_XDP system; the skb and GRO
# for nftables and haproxy, whose l0 runs GRO to take the live frames) on
# the sending CPU. sender (the default): left there, on the generator's
# CPU, which then does part of every system's work, more of an AF_XDP
# system's than of nftables's. own: that NAPI is a thread pinned to the
# system's CPU, as a NIC queue's interrupt affined to the system's core
# would put it; the thread is woken, not run inline, and a veth's ring
# holds 256 frames, so paced traffic loses frames while it waits for the
# CPU and the overload curve's loss-tolerant capacity comes out low.
# SUT_RX_PRIO=N makes the thread SCHED_FIFO N (51 preempts a worker of
# rt_priority 50, as a softirq would). Systems with two queues (xsk2, gvs2,
# gvs2xdp) and the zero-work XDP redirect keep sender: their CPUs include
# the generator's, and the redirect is measured in the sender's softirq by
# design (cell). docs/benchmarks.md, "Who pays for the receive"
SUT_RX=${SUT_RX:-sender}
case $SUT_RX in own | sender) ;; *) echo "bench: SUT_RX must be own or sender, not '$SUT_RX'" >&2; exit 2 ;; esac
sut_rx_own() {
	[ "$SUT_RX" = own ] && [ "$PLACE" = sep ] && [ "$(system_queues "$1")" = 1 ] || return 0
	local d p xsk=0
	case $1 in xdp) return 0 ;; gvsafp1 | gvsdpdk1) ;; gvs* | xsk*) xsk=1 ;; esac
	for d in l0 l1; do
		if ! ip netns exec $NS_LB sh -c "echo 1 >/sys/class/net/$d/threaded" 2>/dev/null; then
			# no NAPI (the kernel's and the packet sockets' l1: netif_rx)
			[ $xsk = 0 ] || die "SUT_RX=own: $d has no NAPI to thread (no XDP program attached?)"
			continue
		fi
		for p in $(pgrep "^napi/$d-"); do
			taskset -pc "$SUT_CPU" "$p" >/dev/null
			[ -z "${SUT_RX_PRIO:-}" ] || chrt -f -p "$SUT_RX_PRIO" "$p"
		done
		echo "# $d: receive in a threaded NAPI pinned to CPU $SUT_CPU${SUT_RX_PRIO:+, SCHED_FIFO $SUT_RX_PRIO} (SUT_RX=own)" >>"$STATE/setup-$1.txt"
	done
}
sut_rx_off() {
	[ "$SUT_RX" = own ] || return 0
	local d
	for d in l0 l1; do ip netns exec $NS_LB sh -c "echo 0 >/sys/class/net/$d/threaded" 2>/dev/null || true; done
}

start_system() {
	start_system_ "$@"
	sut_rx_own "$1"
}
start_system_() {
	case $1 in
	xdp) xdp_start ;;
	xsk1) xsk_start 1 "$SUT_CPU" ;;
	xsk1pp) XSK_SHARED=false xsk_start 1 "$SUT_CPU" xsk1pp ;;
	xsk1w) XSK_WORK=${XSK_WORK_NS:-130} xsk_start 1 "$SUT_CPU" xsk1w ;;
	xsk2) xsk_start 2 "$SUT_CPUS2" ;;
	gvs1) gvs_start 1 "$SUT_CPU" 0 gvs1 ;;
	gvs1rt) gvs_start 1 "$SUT_CPU" 50 gvs1rt ;;
	gvs1rtpp) UMEM=per-port gvs_start 1 "$SUT_CPU" 50 gvs1rtpp ;;
	gvs1rtref)
		[ -x "${GVS_REF_BIN:-}/gvs-dataplane" ] || die "gvs1rtref: set GVS_REF_BIN to a directory with another build's gvs-dataplane"
		GVS_DP_BIN=$GVS_REF_BIN/gvs-dataplane gvs_start 1 "$SUT_CPU" 50 gvs1rtref ;;
	gvs2) gvs_start 2 "$SUT_CPUS2" 0 gvs2 ;;
	gvsdpdk1) gvs_start 1 "$SUT_CPU" 0 gvsdpdk1 dpdk-afpacket ;;
	gvsdpdkxdp1) gvs_start 1 "$SUT_CPU" 0 gvsdpdkxdp1 dpdk-afxdp ;;
	gvsafp1) gvs_start 1 "$SUT_CPU" 0 gvsafp1 afpacket ;;
	gvs1xdp) XDP_OFFLOAD=on gvs_start 1 "$SUT_CPU" 0 gvs1xdp ;;
	gvs2xdp) XDP_OFFLOAD=on gvs_start 2 "$SUT_CPUS2" 0 gvs2xdp ;;
	nft) nft_start ;;
	haproxy) haproxy_start ;;
	*) die "unknown system $1 (xdp xsk1 xsk1pp xsk1w xsk2 gvs1 gvs1rt gvs1rtpp gvs1rtref gvs2 gvsdpdk1 gvsdpdkxdp1 gvsafp1 gvs1xdp gvs2xdp nft haproxy)" ;;
	esac
}

stop_system() {
	sut_rx_off
	case $1 in
	xdp) xdp_stop ;;
	xsk1) xsk_stop 1 ;;
	xsk1pp) xsk_stop 1 xsk1pp ;;
	xsk1w) xsk_stop 1 xsk1w ;;
	xsk2) xsk_stop 2 ;;
	gvs1 | gvs1rt | gvs1rtpp | gvs1rtref | gvs2) gvs_stop - "$1" ;;
	gvsdpdk1) gvs_stop - "$1" dpdk-afpacket ;;
	gvsdpdkxdp1) gvs_stop - "$1" dpdk-afxdp ;;
	gvsafp1) gvs_stop - "$1" afpacket ;;
	gvs1xdp | gvs2xdp) gvs_stop - "$1" ;;
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
		echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shares its CPUs)"
		echo "go: $("$GO" version | cut -d' ' -f3)"
		echo "gvs: $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)"
		echo "nftables: $(nft --version 2>/dev/null | head -1)"
		echo "haproxy: $(haproxy -v 2>/dev/null | head -1)"
		echo "wrk: $(wrk -v 2>&1 | head -1)"
		echo "nginx: $(nginx -v 2>&1 | head -1)"
		echo "gnuplot: $(gnuplot --version 2>/dev/null)"
		echo "udp generator: $GEN"
		echo "veth receive of the system's ports (SUT_RX): $SUT_RX${SUT_RX_PRIO:+, SCHED_FIFO $SUT_RX_PRIO}"
		for p in $PLACES; do echo "placement $p: $(place_desc "$p")"; done
		echo "nf_conntrack_max: $(sysctl -n net.netfilter.nf_conntrack_max 2>/dev/null || echo n/a)"
		echo "reps: $REPS"
	} >"$OUT/env.txt"
}

# measure SYSTEM: every selected test of SYSTEM in the current placement
measure() {
	local sys=$1 tests=() t rep
	for t in $(system_tests "$sys"); do
		case " $TESTS " in *" $t "*) ;; *) continue ;; esac
		case " $(place_tests "$PLACE") " in *" $t "*) tests+=("$t") ;; esac
	done
	[ ${#tests[@]} -gt 0 ] || return 0
	# two workers or queues need two CPUs of their own placement
	if [ "$(system_queues "$sys")" = 2 ] && [ "$PLACE" != sep ]; then return 0; fi
	log "$PLACE $sys: ${tests[*]}"
	start_system "$sys"
	cp "$STATE/setup-$sys.txt" "$OUT/setup-$PLACE-$sys.txt"
	local first=1
	for t in "${tests[@]}"; do
		[ $first = 1 ] || reset_system "$sys"
		first=0
		case $t in
		over) for rep in $(seq 1 "$REPS"); do over "$sys" "$rep" "$(system_queues "$sys")"; done ;;
		synproxy)
			synproxy_on "$sys"
			for rep in $(seq 1 "$REPS"); do synproxy_rep "$sys" "$rep"; done
			;;
		wrk)
			tcp_hosts_up
			nginx_start "$GEN_CPUS"
			for rep in $(seq 1 "$REPS"); do wrk_cell "$sys" "$rep"; done
			nginx_stop
			tcp_hosts_down
			;;
		tcp)
			tcp_hosts_up
			iperf_start "$sys"
			for rep in $(seq 1 "$REPS"); do tcp_cell "$sys" "$rep"; done
			iperf_stop "$sys"
			tcp_hosts_down
			;;
		*)
			for rep in $(seq 1 "$REPS"); do
				if [ "$t" = conc ] && [ "$rep" -gt 1 ]; then reset_system "$sys"; fi
				cell "$sys" "$t" "$rep" "$(system_queues "$sys")"
			done
			;;
		esac
	done
	stop_system "$sys"
}

main() {
	while [ $# -gt 0 ]; do
		case $1 in
		--reps) REPS=$2; shift 2 ;;
		--quick) QUICK=1; REPS=1; UDP_S=3 SYN_S=3 CPS_S=3 CONC_CONNS=50000 OVER_S=2 WRK_S=3 TCP_S=3; shift ;;
		--only) ONLY=$2; shift 2 ;;
		--tests) TESTS=$2; shift 2 ;;
		--places) PLACES=$2; shift 2 ;;
		--no-micro) MICRO=0; shift ;;
		--out) OUT=$2; shift 2 ;;
		--cleanup) cleanup; exit 0 ;;
		up) deps; build; trap 'echo "bench: up failed" >&2; cleanup' ERR; topo_up; trap - ERR; exit 0 ;;
		down) cleanup; exit 0 ;;
		start) place_set sep; topo_load; OUT=${OUT:-$STATE/manual}; mkdir -p "$OUT"; start_system "$2"; exit 0 ;;
		stop) place_set sep; topo_load; stop_system "$2"; exit 0 ;;
		*) die "unknown argument $1 (see the header of $0)" ;;
		esac
	done
	[ "$(id -u)" = 0 ] || die "needs root (network namespaces, XDP)"
	[ "$REPS" -ge 1 ] || die "--reps $REPS: at least 1"
	for p in $PLACES; do place_set "$p"; done
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
		# built as gvs-dataplane is: with its PGO profile
		echo "go test -pgo=\$PWD/cmd/gvs-dataplane/default.pgo -run '^\$' -bench . -benchmem ./dataplane/" >"$OUT/micro.cmd"
		(cd "$ROOT" && "$GO" test -pgo="$ROOT/cmd/gvs-dataplane/default.pgo" -run '^$' -bench . -benchmem ./dataplane/) >"$OUT/micro.txt" 2>&1 ||
			log "micro benchmarks failed (see $OUT/micro.txt)"
	fi

	log "topology up"
	topo_up
	topo_load
	local p sys
	for p in $PLACES; do
		place_set "$p"
		for sys in $ONLY; do measure "$sys"; done
	done
	cleanup
	trap - EXIT

	log "report"
	"$TOOLS/report" --dir "$OUT" --reps "$REPS" --elapsed $((SECONDS - t_start))
	log "done in $((SECONDS - t_start))s: $OUT/report.md"
}

main "$@"
