// Package ipvsadm is the pure part of GVS's ipvsadm: the command line
// parser and the listings, with no I/O of its own. cmd/ipvsadm connects it
// to the dataplane API.
//
// The contract is ipvsadm 1.31 (ipvsadm.c, libipvs's ipvs_strerror and
// sort order, config_stream.c for -R) plus the extensions of DPVS's
// ipvsadm (tools/ipvsadm/ipvsadm.c): -b/--fullnat, -J/--snat,
// -j/--synproxy enable|disable, -P/-Q/-G with -z/--laddr and -F/--ifname,
// --conn-timeout, --proxy-protocol. Options, messages, exit codes and
// output formats follow those sources word for word; where GVS departs
// from them it says so next to the code:
//
//   - -b is --fullnat, as in DPVS; LVS's scheduler flags are
//     --sched-flags (long only), and -S writes them that way;
//   - -S also writes what GVS needs to restore the table and ipvsadm
//     leaves out: -x/-y thresholds, -j enable, --conn-timeout and the
//     local addresses (-P … -z … -F …);
//   - -r without a port takes the service's port whatever the order of
//     -t and -r (ipvsadm takes the port -t had set so far);
//   - -R reads and checks every line before applying any, skips "#"
//     comments, and reports failures with their line numbers;
//   - host names are not resolved on input (ports may be service names);
//   - what the API cannot carry is refused by name (CheckGVS).
package ipvsadm
