package ipvsadm

import "strings"

// libipvsMessages are the messages of libipvs's ipvs_strerror (ipvsadm
// 1.31) and of DPVS's local address calls, which ipvsadm prints alone on
// a line.
var libipvsMessages = []string{
	"Service already exists",
	"Scheduler or persistence engine not found",
	"Scheduler not found",
	"No such service",
	"Service not defined",
	"Destination already exists",
	"No such destination",
	"Daemon has already run",
	"No daemon is running",
	"Local address already exists",
	"No such Local address",
	"Permission denied (you must be root)",
	"Memory allocation problem",
	"Protocol not available",
	"Operation not supported with IPv6",
	"Operation not supported with specified address family",
}

// StrError is what ipvsadm prints for a failed call: when the dataplane's
// message contains one of libipvs's messages (GVS's messages say which
// service or destination they are about, then libipvs's words), just that
// message, as ipvsadm prints it; otherwise the dataplane's message.
func StrError(msg string) string {
	lower := strings.ToLower(msg)
	for _, m := range libipvsMessages {
		if i := strings.Index(lower, strings.ToLower(m)); i >= 0 {
			return msg[i : i+len(m)]
		}
	}
	return msg
}
