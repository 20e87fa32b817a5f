# shellcheck shell=bash
# The benchmark topology, sourced by bench/run.sh (never the lab's gvs-*
# names, so both can run on one machine):
#
#   gvsb-gen                  gvsb-lb (system under test)               gvsb-rs
#    g0  ─────────────────────  l0 10.11.0.1/24      l1 10.12.0.1/24  ───────── r0
#    gvs-pktgen clients          VIP 10.11.0.100      LIPs 10.12.1.1-32          gvs-pktgen sink and
#    10.11.0.2, 172.16.0.0/16                                                    real servers 10.12.0.11-14
#
# Both veth pairs have $BENCH_QUEUES queues. The generator and the sink are
# one gvs-pktgen process that opens g0 (in gvsb-gen) and r0 (in gvsb-rs)
# with AF_XDP. State (the list of created namespaces, logs, configs) lives
# in $STATE; topo_down removes exactly what topo_up created.

NS_GEN=gvsb-gen NS_LB=gvsb-lb NS_RS=gvsb-rs
GEN_IP=10.11.0.2 LB_IP=10.11.0.1 LB_RS_IP=10.12.0.1
VIP=10.11.0.100 VIP_UDP_PORT=9000 VIP_TCP_PORT=80 RS_PORT_UDP=9000 RS_PORT_TCP=8080
CLIENTS=172.16.0.0/16
RS_IPS=(10.12.0.11 10.12.0.12 10.12.0.13 10.12.0.14)
RS_PREFIX=10.12.0.0/24
LIP_COUNT=32
lips() { for i in $(seq 1 "$LIP_COUNT"); do echo "10.12.1.$i"; done; }
BENCH_QUEUES=${BENCH_QUEUES:-2}

mac_of() { ip -n "$1" -o link show "$2" | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2; }

topo_up() {
	mkdir -p "$STATE"
	[ -f "$STATE/created" ] && die "a benchmark topology is already up ($STATE/created): bench/run.sh --cleanup"
	for ns in $NS_GEN $NS_LB $NS_RS; do
		ip netns list | grep -qw "^$ns" && die "namespace $ns exists but was not created by this run: ip netns del $ns"
	done
	: >"$STATE/created"
	for ns in $NS_GEN $NS_LB $NS_RS; do
		ip netns add $ns
		echo $ns >>"$STATE/created"
		ip -n $ns link set lo up
		ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	done
	local q=$BENCH_QUEUES
	ip link add g0 netns $NS_GEN numtxqueues "$q" numrxqueues "$q" type veth peer name l0 netns $NS_LB numtxqueues "$q" numrxqueues "$q"
	ip link add r0 netns $NS_RS numtxqueues "$q" numrxqueues "$q" type veth peer name l1 netns $NS_LB numtxqueues "$q" numrxqueues "$q"
	for x in "$NS_GEN g0" "$NS_RS r0" "$NS_LB l0" "$NS_LB l1"; do
		set -- $x
		# nothing in this topology may hand over unfinished checksums or
		# merged frames: offloads off on every end
		ip netns exec "$1" ethtool -K "$2" tx off rx off tso off gso off gro off rxvlan off txvlan off >/dev/null 2>&1 || true
		ip -n "$1" link set "$2" up
	done
	GEN_MAC=$(mac_of $NS_GEN g0) RS_MAC=$(mac_of $NS_RS r0)
	L0_MAC=$(mac_of $NS_LB l0) L1_MAC=$(mac_of $NS_LB l1)
	cat >"$STATE/topo.env" <<EOF
GEN_MAC=$GEN_MAC RS_MAC=$RS_MAC L0_MAC=$L0_MAC L1_MAC=$L1_MAC
EOF
}

topo_load() { . "$STATE/topo.env"; }

topo_down() {
	[ -f "$STATE/created" ] || return 0
	for ns in $(tac "$STATE/created"); do ip netns del "$ns" 2>/dev/null || true; done
	rm -f "$STATE/created" "$STATE/topo.env"
}

# kernel_lb_up: the LB namespace's kernel owns l0/l1 (nftables, haproxy).
# Its receive processing is steered to the system-under-test CPU with RPS,
# the kernel's counterpart of pinning a GVS worker there (mask 0, unpinned
# placement: processed where it arrives).
kernel_lb_up() {
	ip -n $NS_LB addr add $LB_IP/24 dev l0
	ip -n $NS_LB addr add $LB_RS_IP/24 dev l1
	ip -n $NS_LB route add $CLIENTS via $GEN_IP dev l0
	ip -n $NS_LB neigh replace $GEN_IP lladdr "$GEN_MAC" dev l0 nud permanent
	for rs in "${RS_IPS[@]}"; do ip -n $NS_LB neigh replace "$rs" lladdr "$RS_MAC" dev l1 nud permanent; done
	ip netns exec $NS_LB sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
		net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.l0.rp_filter=0 net.ipv4.conf.l1.rp_filter=0
	rps_to "$SUT_CPUS_MASK"
	# XDP live frames (the generator) reach a veth only when it runs NAPI:
	# an XDP program (GVS, xskfwd, xdpfwd have one) or GRO on
	ip netns exec $NS_LB ethtool -K l0 gro on >/dev/null
}

kernel_lb_down() {
	ip netns exec $NS_LB ethtool -K l0 gro off >/dev/null 2>&1 || true
	rps_to 0
	ip -n $NS_LB addr flush dev l0 2>/dev/null || true
	ip -n $NS_LB addr flush dev l1 2>/dev/null || true
	ip -n $NS_LB neigh flush all 2>/dev/null || true
	ip netns exec $NS_LB sysctl -qw net.ipv4.ip_forward=0
}

# rps_to MASK: receive packet steering of l0/l1's queues to the CPUs in MASK (hex)
rps_to() {
	ip netns exec $NS_LB sh -c "for f in /sys/class/net/l0/queues/rx-*/rps_cpus /sys/class/net/l1/queues/rx-*/rps_cpus; do echo $1 > \$f; done"
}
