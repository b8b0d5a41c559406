# Re-plot from this folder with: gnuplot bytes_per_coder.gp
set terminal svg size 900,600 dynamic enhanced
set output 'bytes_per_coder.svg'
set title 'Mean bytes per image per coder (ptq, split stage1, granularity tensor)' noenhanced
set xlabel 'bits per value'
set ylabel 'bytes per image (log scale)'
set xrange [0.5:8.5]
set xtics 1
set logscale y 2
set format y '%g'
set grid
set key outside right top
plot 'bytes_per_coder.dat' index 0 using 1:2 with linespoints pt 7 ps 1.1 title 'none' noenhanced, \
     'bytes_per_coder.dat' index 1 using 1:2 with linespoints pt 7 ps 1.1 title 'zstd' noenhanced, \
     'bytes_per_coder.dat' index 2 using 1:2 with linespoints pt 7 ps 1.1 title 'cabac' noenhanced
unset output
