set terminal pngcairo size 1400,1000 font "sans,10" noenhanced
set output "bench/results/2026-12-04-223615/chart.png"
set datafile missing "?"
set multiplot layout 2,2 title "GVS benchmark 2026-12-04-223615 (medians; error bars min–max; separate cores unless said)"
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
plot "bench/results/2026-12-04-223615/chart.dat" using 2:3:4:xtic(1) title "UDP", "" using 5:6:7 title "SYN flood"
set title "TCP connections per second"
set ylabel "thousand connections/s"
plot "bench/results/2026-12-04-223615/chart.dat" using 8:9:10:xtic(1) title "gvs-pktgen tcp" lc rgb "#2e7d32", "" using 11:12:13 title "wrk -> nginx" lc rgb "#8e24aa"
set title "overload curve, separate cores (forwarded at 1x, 2x, 5x capacity offered)"
set style data linespoints
set xlabel "offered / capacity"
set ylabel "forwarded Mpps"
set xtics ("1x" 1, "2x" 2, "5x" 5) rotate by 0
plot for [i=2:4] "bench/results/2026-12-04-223615/chart-over-sep.dat" using 1:i title columnhead(i) lw 2 pt 7
unset xlabel
set title "overload curve, one core (forwarded at 1x, 2x, 5x capacity offered)"
set style data linespoints
set xlabel "offered / capacity"
set ylabel "forwarded Mpps"
set xtics ("1x" 1, "2x" 2, "5x" 5) rotate by 0
plot for [i=2:4] "bench/results/2026-12-04-223615/chart-over-one.dat" using 1:i title columnhead(i) lw 2 pt 7
unset xlabel
unset multiplot
