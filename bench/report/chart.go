package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// short names of the systems in the chart
var short = map[string]string{"xdp": "XDP redirect", "xsk1": "AF_XDP fwd 1q", "xsk2": "AF_XDP fwd 2q", "xsk1pp": "AF_XDP fwd 1q, UMEM per port", "xsk1w": "AF_XDP fwd 1q + work", "gvs1rtpp": "GVS 1w rt50, UMEM per port", "gvs1rtref": "GVS 1w rt50, reference build",
	"gvs1": "GVS 1w", "gvs1rt": "GVS 1w rt50", "gvs2": "GVS 2w", "gvsdpdk1": "GVS dpdk afp", "gvsdpdkxdp1": "GVS dpdk axdp",
	"gvsafp1": "GVS afpacket", "gvs1xdp": "GVS XDP fast", "gvs2xdp": "GVS XDP fast 2w", "nft": "nftables", "haproxy": "haproxy"}

// chart draws chart.png with gnuplot: Mpps (UDP, SYN) and connections/s
// (gvs-pktgen tcp, wrk) per system with min–max error bars, separate
// cores; and the overload curves of the separate-core and one-core
// placements (forwarded Mpps against the offered multiple of capacity).
func (d *data) chart(udp, syn, cps map[string]stat) error {
	var dat strings.Builder
	n := 0
	for _, s := range systems {
		u, y, c, k := udp[s.id], syn[s.id], cps[s.id], d.metricAt("sep", s.id, "wrk", wrkRPS)
		if !u.ok() && !y.ok() && !c.ok() && !k.ok() {
			continue
		}
		col := func(v stat, unit float64) string {
			if !v.ok() {
				return "0 0 0"
			}
			return fmt.Sprintf("%g %g %g", v.med/unit, v.min/unit, v.max/unit)
		}
		fmt.Fprintf(&dat, "\"%s\" %s %s %s %s\n", short[s.id], col(u, 1e6), col(y, 1e6), col(c, 1e3), col(k, 1e3))
		n++
	}
	if n == 0 {
		return fmt.Errorf("no data")
	}
	datPath := filepath.Join(d.dir, "chart.dat")
	if err := os.WriteFile(datPath, []byte(dat.String()), 0o644); err != nil {
		return err
	}
	// one file per placement: offered factor, then forwarded Mpps per system
	curvePlots := ""
	for _, pl := range placements[:2] {
		var ids []string
		rows := make([][]string, len(overFactors))
		for _, s := range systems {
			c, ok := d.curve(pl.id, s.id)
			if !ok {
				continue
			}
			ids = append(ids, s.id)
			for i := range overFactors {
				v := "?"
				if c.fwd[i].ok() {
					v = fmt.Sprintf("%g", c.fwd[i].med/1e6)
				}
				rows[i] = append(rows[i], v)
			}
		}
		if len(ids) == 0 {
			continue
		}
		var b strings.Builder
		b.WriteString("factor")
		for _, id := range ids {
			fmt.Fprintf(&b, " \"%s\"", short[id])
		}
		b.WriteString("\n")
		for i, f := range overFactors {
			fmt.Fprintf(&b, "%d %s\n", f, strings.Join(rows[i], " "))
		}
		p := filepath.Join(d.dir, "chart-over-"+pl.id+".dat")
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			return err
		}
		curvePlots += fmt.Sprintf(`set title "overload curve, %s (forwarded at 1x, 2x, 5x capacity offered)"
set style data linespoints
set xlabel "offered / capacity"
set ylabel "forwarded Mpps"
set xtics ("1x" 1, "2x" 2, "5x" 5) rotate by 0
plot for [i=2:%d] "%s" using 1:i title columnhead(i) lw 2 pt 7
unset xlabel
`, pl.label, len(ids)+1, p)
	}
	gp := fmt.Sprintf(`set terminal pngcairo size 1400,1000 font "sans,10" noenhanced
set output "%s"
set datafile missing "?"
set multiplot layout 2,2 title "GVS benchmark %s (medians; error bars min–max; separate cores unless said)"
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.6 border -1
set boxwidth 0.9
set xtics rotate by -30 scale 0
set grid ytics
set key top right
set yrange [0:*]
set title "packets per second (64-byte UDP, SYN flood)"
set ylabel "Mpps"
plot "%s" using 2:3:4:xtic(1) title "UDP", "" using 5:6:7 title "SYN flood"
set title "TCP connections per second"
set ylabel "thousand connections/s"
plot "%s" using 8:9:10:xtic(1) title "gvs-pktgen tcp" lc rgb "#2e7d32", "" using 11:12:13 title "wrk -> nginx" lc rgb "#8e24aa"
%sunset multiplot
`, filepath.Join(d.dir, "chart.png"), filepath.Base(d.dir), datPath, datPath, curvePlots)
	gpPath := filepath.Join(d.dir, "chart.gp")
	if err := os.WriteFile(gpPath, []byte(gp), 0o644); err != nil {
		return err
	}
	out, err := exec.Command("gnuplot", gpPath).CombinedOutput()
	if err != nil {
		return fmt.Errorf("gnuplot: %v: %s", err, out)
	}
	return nil
}
