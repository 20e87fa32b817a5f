#!/usr/bin/env bash
# make demo: the namespace lab with GVS on AF_XDP (two workers, adaptive
# idle mode); ping and ARP through GVS, the management address through KNI,
# HTTP routed through GVS, then a FullNAT service configured with ipvsadm
# serving real HTTP traffic from two real servers, and the statistics.
# Tears down on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=$ROOT/scripts/lab.sh
DPIP=$ROOT/bin/dpip
DRIVER=${DRIVER:-afxdp}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

cleanup() {
	[ -n "${SRV_PIDS:-}" ] && kill $SRV_PIDS 2>/dev/null || true
	step "tear down"
	"$LAB" down
}
"$LAB" down >/dev/null 2>&1 || true
step "lab up ($DRIVER driver, adaptive idle mode)"
"$LAB" up --driver "$DRIVER" --workers 2
trap cleanup EXIT
eval "$("$LAB" env)"
export GVS_DATAPLANE_SOCKET=$DP_SOCKET

step "lab addresses (scripts/lab.sh env)"
"$LAB" env | grep -E '^(CLIENT_IP|LB_IP|LB_MGMT_IP|RS1_IP|RS2_IP)='

step "ping GVS from the client (answered by the dataplane)"
run ip netns exec "$CLIENT_NS" ping -c 3 -i 0.2 "$LB_IP"
run ip netns exec "$CLIENT_NS" ping -6 -c 3 -i 0.2 "$LB_IP6"

step "the client's ARP/ND entries for GVS (MAC of $LB_CLIENT_PORT)"
run ip -n "$CLIENT_NS" neigh show dev eth0
run "$DPIP" link show "$LB_CLIENT_PORT"

step "the management address lives in the kernel behind KNI ($LB_CLIENT_KNI)"
run ip -n "$LB_NS" -br addr show dev "$LB_CLIENT_KNI"
run ip netns exec "$CLIENT_NS" ping -c 2 -i 0.2 "$LB_MGMT_IP"
ip netns exec "$LB_NS" "$ROOT/bin/gvs-testsrv" --name gvs-lb-kernel --http "$LB_MGMT_IP:80" &
SRV_PIDS="$!"
ip netns exec "$RS1_NS" "$ROOT/bin/gvs-testsrv" --name rs1 --http "$RS1_IP:8080" &
SRV_PIDS="$SRV_PIDS $!"
ip netns exec "$RS2_NS" "$ROOT/bin/gvs-testsrv" --name rs2 --http "$RS2_IP:8080" &
SRV_PIDS="$SRV_PIDS $!"
sleep 0.3
run ip netns exec "$CLIENT_NS" curl -sS --max-time 5 "http://$LB_MGMT_IP/"

step "HTTP from the client to rs1, routed through GVS"
run ip netns exec "$CLIENT_NS" curl -sS --max-time 5 "http://$RS1_IP:8080/"
run ip netns exec "$CLIENT_NS" ping -c 2 -i 0.2 "$RS1_IP"

step "a FullNAT service, configured with ipvsadm"
IPVSADM=$ROOT/bin/ipvsadm
run "$IPVSADM" -A -t "$VIP:80" -s wrr
run "$IPVSADM" -a -t "$VIP:80" -r "$RS1_IP:8080" -b -w 1
run "$IPVSADM" -a -t "$VIP:80" -r "$RS2_IP:8080" -b -w 2
run "$IPVSADM" --add-laddr -z "$LIP" -t "$VIP:80" -F "$LB_RS_PORT"
run "$IPVSADM" -L -n

step "30 HTTP requests to the VIP: the real servers see GVS's local address"
for i in $(seq 1 30); do ip netns exec "$CLIENT_NS" curl -sS --max-time 5 "http://$VIP/"; done | sort | uniq -c |
	awk '{sub(/:[0-9]+$/, "", $3); print}' | sort | uniq -c | awk '{print "  " $1 " answers from " $3 " (" $4 ")"}'
run "$IPVSADM" -L -n
run "$IPVSADM" -L -n -c | sed -n 1,8p  # reads it all: no SIGPIPE under pipefail

step "dataplane state and statistics (dpip)"
run "$DPIP" addr show
run "$DPIP" route show
run "$DPIP" neigh show
run "$DPIP" -s link show
run "$DPIP" worker show
run "$DPIP" info
