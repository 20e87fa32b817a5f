#!/usr/bin/env bash
# GVS network-namespace lab: a client, GVS and real servers joined by veth
# pairs, with gvs-dataplane running in the LB namespace.
#
#   gvs-client (eth0 10.1.0.2)  ──  dp0 [gvs-lb: gvs-dataplane] dp1  ──  br0 [gvs-sw]  ──  gvs-rs1 (eth0 10.2.0.11)
#                                    10.1.0.1         10.2.0.1                            gvs-rs2 (eth0 10.2.0.12) …
#   KNI (kernel side, in gvs-lb):  dp0.kni 10.1.0.3 (management)   dp1.kni 10.2.0.3
#   VIP 10.1.0.100 / fd00:1::100 on dp0, LIP (FullNAT local address) 10.2.0.100 / fd00:2::100 on dp1
#
# usage: scripts/lab.sh up [--driver afxdp|afpacket|dpdk] [--workers N] [--rs N] [--idle adaptive|busy]
#                          [--port-selection portmask|rss]
#        scripts/lab.sh down | status | env
#        scripts/lab.sh restart-dataplane [--kill]   (stop and start gvs-dataplane, KNI addresses included)
# env:   LAB_DRIVER=afxdp|afpacket|dpdk   the driver when --driver is not given (dpdk: bin/dpdk/gvs-dataplane
#                                  from make dpdk, DPDK's net_af_packet vdevs on dp0/dp1, no hugepages)
#        GVS_LAB_CONN_CAPACITY=N   each worker's connection table size (ipvs.conn_capacity; default the dataplane's)
#        GVS_LAB_UOA_MAX_TRAIL=N   UOA in the first N datagrams of FullNAT UDP connections (ipvs.uoa_max_trail)
#        GVS_LAB_UOA_MODE=ipo|opp  how UOA carries the client's address (ipvs.uoa_mode; default the dataplane's, ipo)
#        GVS_LAB_XDP_OFFLOAD=on|auto  the XDP fast path for established FullNAT connections (ipvs.xdp_offload;
#                                  default off); also turns GRO on where GVS's redirects arrive (docs/xdp.md)
#        GVS_LAB_RT_PRIORITY=N     SCHED_FIFO priority of the workers (workers.rt_priority). The lab
#                                  runs them at normal priority (0) unless told: its generators, floods
#                                  and test clients share the same 2 CPUs and must keep their share
#                                  (the dataplane's own default with adaptive idle is SCHED_FIFO 50)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${GVS_BIN:-$ROOT/bin}
STATE=${GVS_LAB_STATE:-/run/gvs-lab}

CLIENT_NS=gvs-client LB_NS=gvs-lb SW_NS=gvs-sw
CLIENT_IP=10.1.0.2 CLIENT_IP6=fd00:1::2
LB_IP=10.1.0.1 LB_IP6=fd00:1::1
LB_MGMT_IP=10.1.0.3 LB_MGMT_IP6=fd00:1::3
LB_RS_IP=10.2.0.1 LB_RS_IP6=fd00:2::1
LB_KNI_RS_IP=10.2.0.3
LB_CLIENT_PORT=dp0 LB_RS_PORT=dp1
VIP=10.1.0.100 VIP6=fd00:1::100
LIP=10.2.0.100 LIP6=fd00:2::100

die() { echo "lab: $*" >&2; exit 1; }
log() { echo "lab: $*"; }

rs_ip() { echo "10.2.0.$((10 + $1))"; }
rs_ip6() { echo "fd00:2::$((10 + $1))"; }

# created records every namespace this lab made, so down removes exactly those.
created() { echo "$1" >>"$STATE/created"; }

load_state() {
	DRIVER=afxdp WORKERS=1 NRS=2 IDLE=adaptive
	[ -f "$STATE/lab.env" ] && . "$STATE/lab.env"
	return 0
}

cmd_env() {
	load_state
	cat <<EOF
LAB_STATE=$STATE
LAB_DRIVER=$DRIVER
LAB_WORKERS=$WORKERS
CLIENT_NS=$CLIENT_NS
LB_NS=$LB_NS
SW_NS=$SW_NS
CLIENT_IF=eth0
CLIENT_IP=$CLIENT_IP
CLIENT_IP6=$CLIENT_IP6
LB_IP=$LB_IP
LB_IP6=$LB_IP6
LB_MGMT_IP=$LB_MGMT_IP
LB_MGMT_IP6=$LB_MGMT_IP6
LB_RS_IP=$LB_RS_IP
LB_RS_IP6=$LB_RS_IP6
LB_KNI_RS_IP=$LB_KNI_RS_IP
LB_CLIENT_PORT=$LB_CLIENT_PORT
LB_RS_PORT=$LB_RS_PORT
VIP=$VIP
VIP6=$VIP6
LIP=$LIP
LIP6=$LIP6
LB_CLIENT_KNI=$LB_CLIENT_PORT.kni
LB_RS_KNI=$LB_RS_PORT.kni
DP_SOCKET=$STATE/dataplane.sock
DP_CONFIG=$STATE/dataplane.yaml
DP_LOG=$STATE/dataplane.log
RS_COUNT=$NRS
EOF
	for i in $(seq 1 "$NRS"); do
		echo "RS${i}_NS=gvs-rs$i"
		echo "RS${i}_IP=$(rs_ip "$i")"
		echo "RS${i}_IP6=$(rs_ip6 "$i")"
	done
	# for `eval "$(scripts/lab.sh env)"`: ipvsadm, dpip and gvs-controlplane
	# as typed, talking to the lab's dataplane
	echo "GVS_DATAPLANE_SOCKET=$STATE/dataplane.sock"
	echo "export GVS_DATAPLANE_SOCKET"
	case ":$PATH:" in
	*":$BIN:"*) ;;
	*) echo "PATH=$BIN:\$PATH" ;;
	esac
}

# veth_pair NS_A IF_A NS_B IF_B QUEUES
veth_pair() {
	ip link add "$2" netns "$1" numtxqueues "$5" numrxqueues "$5" type veth \
		peer name "$4" netns "$3" numtxqueues "$5" numrxqueues "$5"
}

# host_side NS IF: a namespace's veth facing GVS. Local sockets would put
# unfinished checksums (tx offload) on the wire, and GSO would hand GVS
# frames larger than the MTU: both off.
host_side() {
	ip netns exec "$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null 2>&1 ||
		ip netns exec "$1" ethtool -K "$2" tx off >/dev/null
}

write_config() {
	DEV0='' DEV1='' DPDK_SECTION=''
	if [ "$DRIVER" = dpdk ]; then
		# DPDK's af_packet PMD on the lab's veths, without hugepages;
		# its frames (framesz less 96 bytes) must fit an mbuf's 1920-byte room,
		# and a block must hold whole frames (the PMD indexes them as one array)
		DEV0=', device: net_af_packet0' DEV1=', device: net_af_packet1'
		DPDK_SECTION="dpdk: {no_huge: true, no_shconf: true, no_pci: true, memory_mb: 256, log_level: warning, vdevs: ['net_af_packet0,iface=dp0,qpairs=$WORKERS,framesz=1920,blocksz=61440', 'net_af_packet1,iface=dp1,qpairs=$WORKERS,framesz=1920,blocksz=61440']}"
	fi
	cat >"$STATE/dataplane.yaml" <<EOF
# generated by scripts/lab.sh
api: {socket: $STATE/dataplane.sock}
log: {level: info, file: $STATE/dataplane.log}
workers: {count: $WORKERS, idle: $IDLE, rt_priority: ${GVS_LAB_RT_PRIORITY:-0}}
ports:
  - {name: dp0, driver: $DRIVER, queues: $WORKERS$DEV0}
  - {name: dp1, driver: $DRIVER, queues: $WORKERS$DEV1}
$DPDK_SECTION
addresses:
  - {addr: $LB_IP/24, dev: dp0}
  - {addr: "$LB_IP6/64", dev: dp0}
  - {addr: $LB_RS_IP/24, dev: dp1}
  - {addr: "$LB_RS_IP6/64", dev: dp1}
  - {addr: $VIP/32, dev: dp0}
  - {addr: "$VIP6/128", dev: dp0}
  - {addr: $LIP/32, dev: dp1}
  - {addr: "$LIP6/128", dev: dp1}
forwarding: {ipv4: true, ipv6: true}
ipvs: {port_selection: $PORTSEL${GVS_LAB_CONN_CAPACITY:+, conn_capacity: $GVS_LAB_CONN_CAPACITY}${GVS_LAB_UOA_MAX_TRAIL:+, uoa_max_trail: $GVS_LAB_UOA_MAX_TRAIL}${GVS_LAB_UOA_MODE:+, uoa_mode: $GVS_LAB_UOA_MODE}${GVS_LAB_XDP_OFFLOAD:+, xdp_offload: $GVS_LAB_XDP_OFFLOAD}}
EOF
}

wait_for() { # SECONDS CMD...
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}

# start_dataplane runs gvs-dataplane in the LB namespace with the lab's
# config, waits for its API socket and KNI devices, and gives the kernel
# side of KNI its addresses (management on dp0.kni, health checks on
# dp1.kni).
start_dataplane() {
	local pidf=$STATE/dataplane.pid
	ip netns exec $LB_NS setsid "$(dp_bin)" -c "$STATE/dataplane.yaml" \
		</dev/null >>"$STATE/dataplane.out" 2>&1 &
	echo $! >"$pidf"
	dp_up() { test -S "$STATE/dataplane.sock" || ! kill -0 "$(cat "$pidf")" 2>/dev/null; }
	if ! wait_for 20 dp_up || ! kill -0 "$(cat "$pidf")" 2>/dev/null; then
		cat "$STATE/dataplane.out" >&2 2>/dev/null || true
		tail -20 "$STATE/dataplane.log" >&2 2>/dev/null || true
		die "gvs-dataplane did not start (see $STATE/dataplane.log)"
	fi
	for k in dp0.kni dp1.kni; do
		wait_for 10 ip -n $LB_NS link show $k || die "KNI device $k missing"
	done
	ip -n $LB_NS addr add $LB_MGMT_IP/24 dev dp0.kni
	ip -n $LB_NS addr add $LB_MGMT_IP6/64 dev dp0.kni nodad
	ip -n $LB_NS link set dp0.kni up
	ip -n $LB_NS addr add $LB_KNI_RS_IP/24 dev dp1.kni
	ip -n $LB_NS link set dp1.kni up
}

# dp_bin: the dpdk driver is in the binary make dpdk builds.
dp_bin() {
	if [ "$DRIVER" = dpdk ]; then echo "$BIN/dpdk/gvs-dataplane"; else echo "$BIN/gvs-dataplane"; fi
}

cmd_up() {
	DRIVER=${LAB_DRIVER:-afxdp} WORKERS=1 NRS=2 IDLE=adaptive PORTSEL=portmask
	while [ $# -gt 0 ]; do
		case "$1" in
		--port-selection) PORTSEL=$2; shift 2 ;;
		--driver) DRIVER=$2; shift 2 ;;
		--workers) WORKERS=$2; shift 2 ;;
		--rs) NRS=$2; shift 2 ;;
		--idle) IDLE=$2; shift 2 ;;
		*) die "unknown option $1 (see the header of $0)" ;;
		esac
	done
	case "$DRIVER" in afxdp | afpacket | dpdk) ;; *) die "--driver $DRIVER: use afxdp, afpacket or dpdk" ;; esac
	[[ "$WORKERS" =~ ^[1-8]$ ]] || die "--workers $WORKERS: use 1-8"
	[[ "$NRS" =~ ^[1-9]$ ]] || die "--rs $NRS: use 1-9"
	[ -x "$(dp_bin)" ] || die "$(dp_bin) missing: run make first (make dpdk for --driver dpdk)"
	[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
	for t in ip ethtool; do command -v $t >/dev/null || die "$t missing: apt-get install iproute2 ethtool"; done
	if [ -f "$STATE/created" ]; then die "a lab is already up (scripts/lab.sh down first)"; fi
	for ns in $CLIENT_NS $LB_NS $SW_NS; do
		ip netns list | grep -qw "^$ns" && die "namespace $ns exists but not from this lab: remove it (ip netns del $ns)"
	done
	mkdir -p "$STATE"
	: >"$STATE/created"
	: >"$STATE/dataplane.log"
	: >"$STATE/dataplane.out"
	UP_OK=0
	trap 'if [ "$UP_OK" != 1 ]; then echo "lab: up failed, tearing down" >&2; cmd_down >&2; fi' EXIT
	cat >"$STATE/lab.env" <<EOF
DRIVER=$DRIVER WORKERS=$WORKERS NRS=$NRS IDLE=$IDLE
EOF
	for ns in $CLIENT_NS $LB_NS $SW_NS; do ip netns add $ns && created $ns; done
	for i in $(seq 1 "$NRS"); do ip netns add "gvs-rs$i" && created "gvs-rs$i"; done
	for ns in $(cat "$STATE/created"); do ip -n "$ns" link set lo up; done

	veth_pair $CLIENT_NS eth0 $LB_NS dp0 "$WORKERS"
	veth_pair $LB_NS dp1 $SW_NS sw-lb "$WORKERS"
	ip -n $SW_NS link add br0 type bridge
	ip -n $SW_NS link set br0 up
	ip -n $SW_NS link set sw-lb master br0 up
	for i in $(seq 1 "$NRS"); do
		veth_pair "gvs-rs$i" eth0 $SW_NS "sw-rs$i" 1
		ip -n $SW_NS link set "sw-rs$i" master br0 up
	done

	# GVS owns dp0/dp1: the kernel of gvs-lb must not speak on them.
	for p in dp0 dp1; do
		ip netns exec $LB_NS sysctl -qw "net.ipv6.conf.$p.disable_ipv6=1"
		ip netns exec $LB_NS ethtool -K $p rxvlan off txvlan off gro off >/dev/null 2>&1 || true
		ip -n $LB_NS link set $p up
		if [ "$DRIVER" = dpdk ]; then
			# DPDK's af_packet sockets see frames before tc ingress; the
			# drop (classic BPF: no matchall needed) keeps gvs-lb's kernel
			# from answering on GVS's ports
			ip netns exec $LB_NS tc qdisc add dev $p clsact
			ip netns exec $LB_NS tc filter add dev $p ingress bpf da bytecode "1,6 0 0 2," skip_hw # ret TC_ACT_SHOT
		fi
	done

	ip -n $CLIENT_NS addr add $CLIENT_IP/24 dev eth0
	ip -n $CLIENT_NS addr add $CLIENT_IP6/64 dev eth0 nodad
	ip -n $CLIENT_NS link set eth0 up
	host_side $CLIENT_NS eth0
	ip -n $CLIENT_NS route add 10.2.0.0/24 via $LB_IP
	ip -n $CLIENT_NS -6 route add fd00:2::/64 via $LB_IP6
	for i in $(seq 1 "$NRS"); do
		ns=gvs-rs$i
		ip -n $ns addr add "$(rs_ip "$i")/24" dev eth0
		ip -n $ns addr add "$(rs_ip6 "$i")/64" dev eth0 nodad
		ip -n $ns link set eth0 up
		host_side $ns eth0
		ip -n $ns route add default via $LB_RS_IP
		ip -n $ns -6 route add default via $LB_RS_IP6
	done

	if [ -n "${GVS_LAB_XDP_OFFLOAD:-}" ]; then
		# the XDP fast path redirects into dp0/dp1; in native mode a veth
		# takes redirected frames only when its peer runs NAPI (GRO on)
		ip netns exec $CLIENT_NS ethtool -K eth0 gro on >/dev/null
		ip netns exec $SW_NS ethtool -K sw-lb gro on >/dev/null
		# and the real servers' veths run NAPI too: without it a veth
		# hands each frame to the backlog of the CPU that sent it
		# (netif_rx), so when the switch's NAPI runs on one CPU and then
		# the other — the fast path and the worker send from different
		# CPUs — two backlogs deliver a stream out of order, after the
		# frames left GVS in order (docs/xdp.md: the order tests). A veth
		# takes the NAPI path only for frames it could aggregate: with TSO
		# on the switch's side it still hands them to netif_rx, hence
		# tso off there
		for i in $(seq 1 "$NRS"); do
			ip netns exec "gvs-rs$i" ethtool -K eth0 gro on >/dev/null
			ip netns exec $SW_NS ethtool -K "sw-rs$i" gro on tso off >/dev/null
		done
	fi
	write_config
	start_dataplane
	UP_OK=1
	log "up: driver $DRIVER, $WORKERS worker(s), $NRS real server(s); state in $STATE"
}

cmd_down() {
	local pidf=$STATE/dataplane.pid
	if [ -f "$pidf" ]; then
		local pid
		pid=$(cat "$pidf")
		if kill "$pid" 2>/dev/null; then
			for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -9 "$pid" 2>/dev/null || true
		fi
		rm -f "$pidf"
	fi
	if [ -f "$STATE/created" ]; then
		for ns in $(tac "$STATE/created"); do ip netns del "$ns" 2>/dev/null || true; done
		rm -f "$STATE/created"
	fi
	rm -f "$STATE/dataplane.sock" "$STATE/lab.env"
	log "down"
}

cmd_status() {
	load_state
	if [ ! -f "$STATE/created" ]; then
		echo "lab: down"
		return 1
	fi
	echo "lab: up (driver $DRIVER, $WORKERS worker(s), $NRS real server(s))"
	echo "namespaces: $(tr '\n' ' ' <"$STATE/created")"
	if [ -f "$STATE/dataplane.pid" ] && kill -0 "$(cat "$STATE/dataplane.pid")" 2>/dev/null; then
		echo "gvs-dataplane: running (pid $(cat "$STATE/dataplane.pid"))"
		"$BIN/dpip" -S "$STATE/dataplane.sock" link show || true
	else
		echo "gvs-dataplane: not running"
		return 1
	fi
}

# restart-dataplane [--kill]: stop gvs-dataplane (SIGTERM, or SIGKILL as a
# crash would), start it again with the lab's config and give the kernel side
# of the new KNI devices its addresses again — what a supervisor and the
# host's network config would do. Services configured at run time are gone
# until the control plane re-applies them.
cmd_restart_dataplane() {
	local sig=TERM
	case "${1:-}" in
	--kill) sig=KILL ;;
	"") ;;
	*) die "restart-dataplane: unknown option $1 (use --kill)" ;;
	esac
	load_state
	[ -f "$STATE/created" ] || die "no lab is up (scripts/lab.sh up first)"
	local pidf=$STATE/dataplane.pid pid
	if [ -f "$pidf" ]; then
		pid=$(cat "$pidf")
		if kill "-$sig" "$pid" 2>/dev/null; then
			for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -9 "$pid" 2>/dev/null || true
			for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		fi
	fi
	rm -f "$STATE/dataplane.sock" # left behind by SIGKILL; the new one must not be mistaken for it
	wait_for 10 sh -c "! ip -n $LB_NS link show dp0.kni" || die "the old dataplane's KNI devices are still there"
	start_dataplane
	log "dataplane restarted (SIG$sig, new pid $(cat "$pidf"))"
}

case "${1:-}" in
up) shift; cmd_up "$@" ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
restart-dataplane) shift; cmd_restart_dataplane "$@" ;;
*) die "usage: $0 up [--driver afxdp|afpacket|dpdk] [--workers N] [--rs N] [--idle adaptive|busy] | down | status | env | restart-dataplane [--kill]" ;;
esac
