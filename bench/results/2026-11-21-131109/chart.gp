set terminal pngcairo size 1400,560 font "sans,10" noenhanced
set output "bench/results/2026-11-21-131109/chart.png"
set multiplot layout 1,2 title "GVS benchmark 2026-11-21-131109 (medians, error bars min–max)"
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
plot "bench/results/2026-11-21-131109/chart.dat" using 2:3:4:xtic(1) title "UDP", "" using 5:6:7 title "SYN flood"
set title "TCP connections per second"
set ylabel "thousand connections/s"
plot "bench/results/2026-11-21-131109/chart.dat" using 8:9:10:xtic(1) title "connections/s" lc rgb "#2e7d32"
unset multiplot
