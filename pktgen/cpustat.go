package pktgen

import (
	"bufio"
	"math"
	"os"
	"strconv"
	"strings"
)

// cpuTimes are one CPU's counters from /proc/stat (clock ticks).
type cpuTimes struct {
	busy, softirq, total uint64
}

// readCPUTimes returns the per-CPU times, nil if /proc/stat is unreadable.
func readCPUTimes() []cpuTimes {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []cpuTimes
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 9 || !strings.HasPrefix(fl[0], "cpu") || fl[0] == "cpu" {
			continue
		}
		var v [8]uint64
		for i := range v {
			v[i], _ = strconv.ParseUint(fl[i+1], 10, 64)
		}
		// user nice system idle iowait irq softirq steal
		idle := v[3] + v[4]
		var t cpuTimes
		for _, x := range v {
			t.total += x
		}
		t.busy = t.total - idle
		t.softirq = v[5] + v[6]
		out = append(out, t)
	}
	return out
}

// CPUUse is one CPU's utilisation over the measurement window.
type CPUUse struct {
	CPU        int     `json:"cpu"`
	BusyPct    float64 `json:"busy_pct"`
	SoftIRQPct float64 `json:"softirq_pct"` // interrupts and softirqs (kernel packet processing)
}

func cpuUse(a, b []cpuTimes) []CPUUse {
	if len(a) != len(b) {
		return nil
	}
	out := make([]CPUUse, len(a))
	for i := range a {
		d := float64(b[i].total - a[i].total)
		if d <= 0 {
			continue
		}
		out[i] = CPUUse{CPU: i,
			BusyPct:    math.Round(1000*float64(b[i].busy-a[i].busy)/d) / 10,
			SoftIRQPct: math.Round(1000*float64(b[i].softirq-a[i].softirq)/d) / 10}
	}
	return out
}
