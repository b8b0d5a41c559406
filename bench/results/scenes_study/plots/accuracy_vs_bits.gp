# Re-plot from this folder with: gnuplot accuracy_vs_bits.gp
set terminal svg size 900,600 dynamic enhanced
set output 'accuracy_vs_bits.svg'
set title 'Best AP50 per method and bit width'
set xlabel 'bits per value'
set ylabel 'AP50 (%)'
set xrange [0.5:8.5]
set xtics 1
set grid
set key outside right top
plot 'accuracy_vs_bits.dat' index 0 using 1:2 with linespoints pt 7 ps 1.1 title 'ptq' noenhanced, \
     'accuracy_vs_bits.dat' index 1 using 1:2 with linespoints pt 7 ps 1.1 title 'ae' noenhanced, \
     'accuracy_vs_bits.dat' index 2 using 1:2 with linespoints pt 7 ps 1.1 title 'qcnet' noenhanced, \
     67.89431666 with lines dt 2 lw 1.5 lc rgb 'black' title 'float model (67.89 %)' noenhanced
unset output
