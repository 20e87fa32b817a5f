#!/usr/bin/env bash
# Installs the Debian packages GVS's lab, demo and tests use, if missing.
set -euo pipefail
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v ethtool >/dev/null || need+=(ethtool)
command -v ping >/dev/null || need+=(iputils-ping)
command -v curl >/dev/null || need+=(curl)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v make >/dev/null || need+=(make)
command -v bird >/dev/null || need+=(bird2) # OSPF in the cluster lab and the announce tests
command -v tcpdump >/dev/null || need+=(tcpdump) # dpip capture compiles its FILTER with tcpdump -ddd
command -v tshark >/dev/null || need+=(tshark)   # the capture tests read the pcapng back with it
command -v hping3 >/dev/null || need+=(hping3)   # the SYN-flood lab tests (hping3 --flood --rand-source)
command -v nginx >/dev/null || need+=(nginx)     # proxy protocol lab test: nginx listen … proxy_protocol
command -v haproxy >/dev/null || need+=(haproxy) # proxy protocol lab test: haproxy accept-proxy
command -v nft >/dev/null || need+=(nftables)    # the million-connection test: real servers drop its datagrams quietly
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing ${need[*]}: run as root or apt-get install them" >&2
		exit 1
	fi
	echo "deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need[@]}" >/dev/null
fi
# the install test (test/install): a clean Debian root, and unit checks
pkg_need=()
command -v debootstrap >/dev/null || pkg_need+=(debootstrap)
command -v systemd-analyze >/dev/null || pkg_need+=(systemd)
command -v dpkg-deb >/dev/null || pkg_need+=(dpkg)
if [ ${#pkg_need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing ${pkg_need[*]}: run as root or apt-get install them" >&2
		exit 1
	fi
	echo "deps: installing ${pkg_need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${pkg_need[@]}" >/dev/null
fi
