package ipvsadm

import "strings"

// Usage is `ipvsadm -h`: ipvsadm 1.31's usage text with DPVS's commands
// and options (in DPVS's words) and GVS's --socket, program name prog.
func Usage(prog string) string {
	r := strings.NewReplacer("%s", prog)
	var b strings.Builder
	b.WriteString(Version())
	b.WriteString(r.Replace(`Usage:
  %s -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [--sched-flags sched-flags] [-j enable|disable] [--conn-timeout seconds] [--mid-flow] [--hash-target sip|qid]
  %s -D virtual-service
  %s -C
  %s -R
  %s -S [-n]
  %s -a|e virtual-service -r server-address [options]
  %s -d virtual-service -r server-address
  %s -L|l [virtual-service] [options]
  %s -Z [virtual-service]
  %s -P|Q virtual-service -z local-address -F ifname [--backup]
  %s -G [virtual-service]
  %s --set tcp tcpfin udp
  %s --start-daemon {master|backup} [daemon-options]
  %s --stop-daemon {master|backup}
  %s -h

`))
	b.WriteString(`Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --add-laddr       -P        add local address
  --del-laddr       -Q        del local address
  --get-laddr       -G        get local address
  --set tcp tcpfin udp        set connection timeout values
  --start-daemon              start connection sync daemon
  --stop-daemon               stop connection sync daemon
  --help            -h        display this help message

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]
  --sctp-service    service-address   service-address is host[:port]
  --fwmark-service|-f fwmark          fwmark is an integer greater than zero

Options:
  --ipv6         -6                   fwmark entry uses IPv6
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh,
                                      the default scheduler is wlc.
  --pe            engine              alternate persistence engine may be sip,
                                      not set by default.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --fullnat      -b                   fullnat mode
  --snat         -J                   SNAT mode
  --tun-type      type                one of ipip|gue,
                                      the default tunnel type is ipip.
  --tun-port      port                tunnel destination port
  --tun-nocsum                        tunnel encapsulation without checksum
  --tun-csum                          tunnel encapsulation with checksum
  --tun-remcsum                       tunnel encapsulation with remote checksum
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --daemon                            output of daemon information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --ops          -o                   one-packet scheduling
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags     flags             scheduler flags (comma-separated)
  --synproxy     -j enable|disable    TCP syn proxy
  --conn-timeout                      set connection established timeout
  --proxy-protocol                    proxy protocol config (disable|v1|v2|v1-insecure|v2-insecure)
  --laddr        -z local-ip          local IP
  --ifname       -F                   nic interface for laddrs
  --hash-target  hashtag              choose target for conhash (support sip or qid for quic)
  --backup                            GVS: -P adds another node's local address, taken over on its failure (no new connections use it)
  --mid-flow                          GVS: mh services schedule a TCP segment without a connection instead of dropping it
  --conn-rate-limit n                 GVS: at most n new connections per second to the service (0: no limit)
  --per-source-limit n                GVS: at most n new connections per second from one client address (0: no limit)
  --drops                             GVS: -L lists what each service's deny/allow lists and limits refused
  --socket          path              gvs-dataplane API socket (default $GVS_DATAPLANE_SOCKET or /run/gvs/dataplane.sock)
Daemon Options:
  --syncid sid                        syncid for connection sync (default=255)
  --sync-maxlen length                Max sync message length (default=1472)
  --mcast-interface interface         multicast interface for connection sync
  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)
  --mcast-port port                   UDP port (default=8848)
  --mcast-ttl ttl                     Multicast TTL (default=1)
`)
	return b.String()
}
