set terminal pngcairo size 1400,1000 font "sans,10" noenhanced
set output "/tmp/benchG/chart.png"
set datafile missing "?"
set multiplot layout 2,2 title "GVS benchmark benchG (medians; error bars min–max; separate cores unless said)"
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
plot "/tmp/benchG/chart.dat" using 2:3:4:xtic(1) title "UDP", "" using 5:6:7 title "SYN flood"
set title "TCP connections per second"
set ylabel "thousand connections/s"
plot "/tmp/benchG/chart.dat" using 8:9:10:xtic(1) title "gvs-pktgen tcp" lc rgb "#2e7d32", "" using 11:12:13 title "wrk -> nginx" lc rgb "#8e24aa"
unset multiplot
