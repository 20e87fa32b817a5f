package ipvsadm

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// Services is a services(5) table, for getservbyname and getservbyport.
type Services struct {
	byName map[string]uint16 // "name/proto", aliases included
	byPort map[string]string // "port/proto" → the first official name
}

// ParseServices reads a services(5) file such as /etc/services.
func ParseServices(r io.Reader) *Services {
	s := &Services{byName: map[string]uint16{}, byPort: map[string]string{}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		portStr, proto, ok := strings.Cut(f[1], "/")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			continue
		}
		key := portStr + "/" + proto
		if _, dup := s.byPort[key]; !dup {
			s.byPort[key] = f[0]
		}
		for _, name := range append([]string{f[0]}, f[2:]...) {
			if _, dup := s.byName[name+"/"+proto]; !dup {
				s.byName[name+"/"+proto] = uint16(port)
			}
		}
	}
	return s
}

// PortByName is getservbyname(name, proto).
func (s *Services) PortByName(name, proto string) (uint16, bool) {
	if s == nil {
		return 0, false
	}
	p, ok := s.byName[name+"/"+proto]
	return p, ok
}

// ServiceByPort is getservbyport(port, proto).
func (s *Services) ServiceByPort(port uint16, proto string) (string, bool) {
	if s == nil {
		return "", false
	}
	n, ok := s.byPort[strconv.Itoa(int(port))+"/"+proto]
	return n, ok
}
