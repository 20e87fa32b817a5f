package ipvsadm

// The option table: ipvsadm 1.31's popt table, DPVS's additions (with
// DPVS's letters), and --sched-flags as a long-only option, because DPVS
// gives -b to --fullnat (DPVS's ipvsadm has no scheduler flags at all; GVS
// keeps LVS's flags under their long name).

type tag int

const (
	tagNone tag = iota
	// commands
	tagAdd
	tagEdit
	tagDel
	tagClear
	tagList
	tagListL
	tagZero
	tagAddServer
	tagEditServer
	tagDelServer
	tagSet
	tagHelp
	tagVersion
	tagRestore
	tagSave
	tagStartDaemon
	tagStopDaemon
	tagAddLAddr
	tagDelLAddr
	tagGetLAddr
	tagAddBlklst
	tagDelBlklst
	tagGetBlklst
	tagAddWhtlst
	tagDelWhtlst
	tagGetWhtlst
	// options
	tagTCP
	tagUDP
	tagSCTP
	tagICMP
	tagICMPv6
	tagFWMark
	tagSched
	tagPersistent
	tagNetmask
	tagReal
	tagMasq
	tagIPIP
	tagGate
	tagFullNAT
	tagSNAT
	tagWeight
	tagUThreshold
	tagLThreshold
	tagNumeric
	tagConnection
	tagMcastIfn
	tagSyncID
	tagTimeout
	tagDaemon
	tagStats
	tagRate
	tagThresholds
	tagPersistentConn
	tagNoSort
	tagSort
	tagExact
	tagIPv6
	tagOps
	tagPE
	tagSchedFlags
	tagMcastGroup
	tagMcastPort
	tagMcastTTL
	tagSyncMaxlen
	tagTunInfo
	tagTunType
	tagTunPort
	tagTunNoCsum
	tagTunCsum
	tagTunRemCsum
	tagLAddr
	tagBlklst
	tagWhtlst
	tagSynproxy
	tagIfname
	tagMatch
	tagHashTarget
	tagCPU
	tagExpireQuiescent
	tagDestCheck
	tagConnTimeout
	tagProxyProtocol
	tagQUIC
	tagSockpair
	tagSocket // GVS: --socket PATH, handled by the parser itself
	tagMidFlow
	tagBackup
	tagConnRateLimit  // GVS --conn-rate-limit N
	tagPerSourceLimit // GVS --per-source-limit N
	tagDrops          // GVS -L --drops
)

var optionTable = []optDef{
	{"add-service", 'A', argNone, tagAdd},
	{"edit-service", 'E', argNone, tagEdit},
	{"delete-service", 'D', argNone, tagDel},
	{"clear", 'C', argNone, tagClear},
	{"list", 'L', argNone, tagList},
	{"list", 'l', argNone, tagListL},
	{"zero", 'Z', argNone, tagZero},
	{"add-server", 'a', argNone, tagAddServer},
	{"edit-server", 'e', argNone, tagEditServer},
	{"delete-server", 'd', argNone, tagDelServer},
	{"set", 0, argNone, tagSet},
	{"help", 'h', argNone, tagHelp},
	{"version", 'v', argNone, tagVersion},
	{"restore", 'R', argNone, tagRestore},
	{"save", 'S', argNone, tagSave},
	{"start-daemon", 0, argRequired, tagStartDaemon},
	{"stop-daemon", 0, argRequired, tagStopDaemon},
	{"add-laddr", 'P', argNone, tagAddLAddr},
	{"del-laddr", 'Q', argNone, tagDelLAddr},
	{"get-laddr", 'G', argNone, tagGetLAddr},
	{"add-blklst", 'U', argNone, tagAddBlklst},
	{"del-blklst", 'V', argNone, tagDelBlklst},
	{"get-blklst", 'B', argNone, tagGetBlklst},
	{"add-whtlst", 'O', argNone, tagAddWhtlst},
	{"del-whtlst", 'Y', argNone, tagDelWhtlst},
	{"get-whtlst", 'W', argNone, tagGetWhtlst},
	{"tcp-service", 't', argRequired, tagTCP},
	{"udp-service", 'u', argRequired, tagUDP},
	{"sctp-service", 0, argRequired, tagSCTP},
	{"icmp-service", 'q', argRequired, tagICMP},
	{"icmpv6-service", '1', argRequired, tagICMPv6},
	{"fwmark-service", 'f', argRequired, tagFWMark},
	{"scheduler", 's', argRequired, tagSched},
	{"persistent", 'p', argOptional, tagPersistent},
	{"netmask", 'M', argRequired, tagNetmask},
	{"real-server", 'r', argRequired, tagReal},
	{"masquerading", 'm', argNone, tagMasq},
	{"ipip", 'i', argNone, tagIPIP},
	{"gatewaying", 'g', argNone, tagGate},
	{"fullnat", 'b', argNone, tagFullNAT},
	{"snat", 'J', argNone, tagSNAT},
	{"weight", 'w', argRequired, tagWeight},
	{"u-threshold", 'x', argRequired, tagUThreshold},
	{"l-threshold", 'y', argRequired, tagLThreshold},
	{"numeric", 'n', argNone, tagNumeric},
	{"connection", 'c', argNone, tagConnection},
	{"mcast-interface", 0, argRequired, tagMcastIfn},
	{"syncid", 0, argRequired, tagSyncID},
	{"timeout", 0, argNone, tagTimeout},
	{"daemon", 0, argNone, tagDaemon},
	{"stats", 0, argNone, tagStats},
	{"rate", 0, argNone, tagRate},
	{"thresholds", 0, argNone, tagThresholds},
	{"persistent-conn", 0, argNone, tagPersistentConn},
	{"nosort", 0, argNone, tagNoSort},
	{"sort", 0, argNone, tagSort},
	{"exact", 'X', argNone, tagExact},
	{"ipv6", '6', argNone, tagIPv6},
	{"ops", 'o', argNone, tagOps},
	{"pe", 0, argRequired, tagPE},
	{"sched-flags", 0, argRequired, tagSchedFlags},
	{"mcast-group", 0, argRequired, tagMcastGroup},
	{"mcast-port", 0, argRequired, tagMcastPort},
	{"mcast-ttl", 0, argRequired, tagMcastTTL},
	{"sync-maxlen", 0, argRequired, tagSyncMaxlen},
	{"tun-info", 0, argNone, tagTunInfo},
	{"tun-type", 0, argRequired, tagTunType},
	{"tun-port", 0, argRequired, tagTunPort},
	{"tun-nocsum", 0, argNone, tagTunNoCsum},
	{"tun-csum", 0, argNone, tagTunCsum},
	{"tun-remcsum", 0, argNone, tagTunRemCsum},
	{"laddr", 'z', argRequired, tagLAddr},
	{"blklst", 'k', argRequired, tagBlklst},
	{"whtlst", '2', argRequired, tagWhtlst},
	{"synproxy", 'j', argRequired, tagSynproxy},
	{"ifname", 'F', argRequired, tagIfname},
	{"match", 'H', argRequired, tagMatch},
	{"hash-target", 0, argRequired, tagHashTarget},
	{"cpu", 0, argRequired, tagCPU},
	{"expire-quiescent", 0, argNone, tagExpireQuiescent},
	{"dest-check", 0, argRequired, tagDestCheck},
	{"conn-timeout", 0, argInt, tagConnTimeout},
	{"proxy-protocol", 0, argRequired, tagProxyProtocol},
	{"quic", 0, argNone, tagQUIC},
	{"sockpair", 0, argRequired, tagSockpair},
	// GVS
	{"mid-flow", 0, argNone, tagMidFlow},
	{"backup", 0, argNone, tagBackup},
	{"conn-rate-limit", 0, argInt, tagConnRateLimit},
	{"per-source-limit", 0, argInt, tagPerSourceLimit},
	{"drops", 0, argNone, tagDrops},
}

// Cmd is an ipvsadm command.
type Cmd int

// The commands, in ipvsadm's order (CMD_ADD …), then DPVS's.
const (
	CmdNone Cmd = iota
	CmdAdd
	CmdEdit
	CmdDel
	CmdFlush
	CmdList
	CmdAddDest
	CmdDelDest
	CmdEditDest
	CmdTimeout
	CmdStartDaemon
	CmdStopDaemon
	CmdRestore
	CmdSave
	CmdZero
	CmdAddLAddr
	CmdDelLAddr
	CmdGetLAddr
	CmdAddBlklst
	CmdDelBlklst
	CmdGetBlklst
	CmdAddWhtlst
	CmdDelWhtlst
	CmdGetWhtlst
	// not ipvsadm commands: -h and -v print and exit at once
	CmdHelp
	CmdVersion
)

var cmdNames = map[Cmd]string{
	CmdAdd:         "add-service",
	CmdEdit:        "edit-service",
	CmdDel:         "delete-service",
	CmdFlush:       "flush",
	CmdList:        "list",
	CmdAddDest:     "add-server",
	CmdDelDest:     "delete-server",
	CmdEditDest:    "edit-server",
	CmdTimeout:     "set",
	CmdStartDaemon: "start-daemon",
	CmdStopDaemon:  "stop-daemon",
	CmdRestore:     "restore",
	CmdSave:        "save",
	CmdZero:        "zero",
	CmdAddLAddr:    "add-laddr",
	CmdDelLAddr:    "del-laddr",
	CmdGetLAddr:    "get-laddr",
	CmdAddBlklst:   "add-blklst",
	CmdDelBlklst:   "del-blklst",
	CmdGetBlklst:   "get-blklst",
	CmdAddWhtlst:   "add-whtlst",
	CmdDelWhtlst:   "del-whtlst",
	CmdGetWhtlst:   "get-whtlst",
	CmdHelp:        "help",
	CmdVersion:     "version",
}

// String returns ipvsadm's name of the command (cmdnames[]).
func (c Cmd) String() string { return cmdNames[c] }

var cmdOfTag = map[tag]Cmd{
	tagAdd: CmdAdd, tagEdit: CmdEdit, tagDel: CmdDel, tagClear: CmdFlush,
	tagList: CmdList, tagListL: CmdList, tagZero: CmdZero,
	tagAddServer: CmdAddDest, tagEditServer: CmdEditDest, tagDelServer: CmdDelDest,
	tagSet: CmdTimeout, tagRestore: CmdRestore, tagSave: CmdSave,
	tagStartDaemon: CmdStartDaemon, tagStopDaemon: CmdStopDaemon,
	tagAddLAddr: CmdAddLAddr, tagDelLAddr: CmdDelLAddr, tagGetLAddr: CmdGetLAddr,
	tagAddBlklst: CmdAddBlklst, tagDelBlklst: CmdDelBlklst, tagGetBlklst: CmdGetBlklst,
	tagAddWhtlst: CmdAddWhtlst, tagDelWhtlst: CmdDelWhtlst, tagGetWhtlst: CmdGetWhtlst,
	tagHelp: CmdHelp, tagVersion: CmdVersion,
}

// Opt is one of the options ipvsadm keeps count of (OPTC_*): each may be
// given once, and the table below says with which commands.
type Opt int

// The counted options, in ipvsadm 1.31's order, then DPVS's, then the two
// DPVS options DPVS does not count (GVS does, so that they are refused
// where they mean nothing).
const (
	OptNumeric Opt = iota
	OptConnection
	OptService
	OptScheduler
	OptPersistent
	OptNetmask
	OptServer
	OptForward
	OptWeight
	OptUThreshold
	OptLThreshold
	OptMcast
	OptTimeout
	OptDaemon
	OptStats
	OptRate
	OptThresholds
	OptPersistentConn
	OptNoSort
	OptSyncID
	OptExact
	OptOnePacket
	OptPE
	OptSchedFlags
	OptMcastGroup
	OptMcastPort
	OptMcastTTL
	OptSyncMaxlen
	OptTunInfo
	OptTunType
	OptTunPort
	OptTunNoCsum
	OptTunCsum
	OptTunRemCsum
	OptLocalAddress
	OptSynproxy
	OptIfname
	OptConnTimeout
	OptProxyProtocol
	OptMidFlow        // GVS: mh services schedule TCP segments without a connection
	OptBackup         // GVS: a backup local address (-P)
	OptHashTarget     // DPVS --hash-target sip|qid (conhash)
	OptBlklst         // DPVS -k (blklst-address)
	OptWhtlst         // DPVS -2 (whtlst-address)
	OptConnRateLimit  // GVS: new connections per second of the service
	OptPerSourceLimit // GVS: new connections per second of one client
	OptDrops          // GVS: -L --drops, what the lists and limits refused
	numOpts
)

var optNames = [numOpts]string{
	"numeric", "connection", "service-address", "scheduler", "persistent",
	"netmask", "real-server", "forwarding-method", "weight", "u-threshold",
	"l-threshold", "mcast-interface", "timeout", "daemon", "stats", "rate",
	"thresholds", "persistent-conn", "nosort", "syncid", "exact", "ops", "pe",
	"sched-flags", "mcast-group", "mcast-port", "mcast-ttl", "sync-maxlen",
	"tun-info", "tun-type", "tun-port", "tun-nocsum", "tun-csum", "tun-remcsum",
	"local-address", "synproxy", "ifname", "conn-timeout", "proxy-protocol",
	"mid-flow", "backup", "hash-target", "blklst-address", "whtlst-address",
	"conn-rate-limit", "per-source-limit", "drops",
}

// String returns ipvsadm's name of the option (optnames[]).
func (o Opt) String() string { return optNames[o] }

// OptSet is a set of counted options.
type OptSet uint64

// Has reports whether o is in the set.
func (s OptSet) Has(o Opt) bool { return s&(1<<o) != 0 }

// commandsVOptions is ipvsadm's commands_v_options table: for each command
// the options that are compulsory ('+'), optional (' ') or exclusive ('1');
// every other option is illegal ('x').
var commandsVOptions = map[Cmd]map[Opt]byte{
	CmdAdd: {OptService: '+', OptScheduler: ' ', OptPersistent: ' ', OptNetmask: ' ',
		OptOnePacket: ' ', OptPE: ' ', OptSchedFlags: ' ',
		OptSynproxy: ' ', OptConnTimeout: ' ', OptProxyProtocol: ' ', OptMidFlow: ' ', OptHashTarget: ' ',
		OptConnRateLimit: ' ', OptPerSourceLimit: ' '},
	CmdEdit: {OptService: '+', OptScheduler: ' ', OptPersistent: ' ', OptNetmask: ' ',
		OptOnePacket: ' ', OptPE: ' ', OptSchedFlags: ' ',
		OptSynproxy: ' ', OptConnTimeout: ' ', OptProxyProtocol: ' ', OptMidFlow: ' ', OptHashTarget: ' ',
		OptConnRateLimit: ' ', OptPerSourceLimit: ' '},
	CmdDel:   {OptService: '+'},
	CmdFlush: {},
	CmdList: {OptNumeric: ' ', OptConnection: '1', OptService: '1', OptTimeout: '1',
		OptDaemon: '1', OptStats: ' ', OptRate: ' ', OptThresholds: ' ',
		OptPersistentConn: ' ', OptNoSort: ' ', OptSyncID: ' ', OptExact: ' ',
		OptTunInfo: ' ', OptDrops: ' '},
	CmdAddDest: {OptService: '+', OptServer: '+', OptForward: ' ', OptWeight: ' ',
		OptUThreshold: ' ', OptLThreshold: ' ', OptTunType: ' ', OptTunPort: ' ',
		OptTunNoCsum: ' ', OptTunCsum: ' ', OptTunRemCsum: ' '},
	CmdDelDest: {OptService: '+', OptServer: '+'},
	CmdEditDest: {OptService: '+', OptServer: '+', OptForward: ' ', OptWeight: ' ',
		OptUThreshold: ' ', OptLThreshold: ' ', OptTunType: ' ', OptTunPort: ' ',
		OptTunNoCsum: ' ', OptTunCsum: ' ', OptTunRemCsum: ' '},
	CmdTimeout: {},
	CmdStartDaemon: {OptMcast: ' ', OptSyncID: ' ', OptMcastGroup: ' ', OptMcastPort: ' ',
		OptMcastTTL: ' ', OptSyncMaxlen: ' '},
	CmdStopDaemon: {OptSyncID: ' '},
	CmdRestore:    {},
	CmdSave:       {OptNumeric: ' '},
	CmdZero:       {OptService: ' '},
	CmdAddLAddr:   {OptService: '+', OptLocalAddress: '+', OptIfname: '+', OptBackup: ' '},
	CmdDelLAddr:   {OptService: '+', OptLocalAddress: '+', OptIfname: '+'},
	CmdGetLAddr:   {OptService: ' '},
	CmdAddBlklst:  {OptService: '+', OptBlklst: '+'},
	CmdDelBlklst:  {OptService: '+', OptBlklst: '+'},
	CmdGetBlklst:  {OptService: ' '},
	CmdAddWhtlst:  {OptService: '+', OptWhtlst: '+'},
	CmdDelWhtlst:  {OptService: '+', OptWhtlst: '+'},
	CmdGetWhtlst:  {OptService: ' '},
}
