package pktgen

import (
	"bufio"
	"io"
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
	return parseCPUTimes(f)
}

// parseCPUTimes reads the per-CPU lines ("cpuN user nice system idle iowait
// irq softirq steal …") of text in /proc/stat's format; other lines are
// skipped.
func parseCPUTimes(r io.Reader) []cpuTimes {
	var out []cpuTimes
	sc := bufio.NewScanner(r)
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

// CPUUseBetween is each CPU's utilisation between two snapshots of
// /proc/stat (bench/run.sh keeps them around the cells it does not run
// gvs-pktgen for); nil if they do not list the same CPUs.
func CPUUseBetween(before, after io.Reader) []CPUUse {
	return cpuUse(parseCPUTimes(before), parseCPUTimes(after))
}

func cpuUse(a, b []cpuTimes) []CPUUse {
	if len(a) != len(b) || len(a) == 0 {
		return nil
	}
	pct := func(x, y, d uint64) float64 {
		if y <= x {
			return 0
		}
		return math.Round(1000*min(float64(y-x)/float64(d), 1)) / 10
	}
	out := make([]CPUUse, len(a))
	for i := range a {
		out[i].CPU = i
		if b[i].total <= a[i].total {
			continue
		}
		d := b[i].total - a[i].total
		out[i].BusyPct = pct(a[i].busy, b[i].busy, d)
		out[i].SoftIRQPct = pct(a[i].softirq, b[i].softirq, d)
	}
	return out
}
