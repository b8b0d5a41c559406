# Re-plot from this folder with: gnuplot accuracy_vs_bytes.gp
set terminal svg size 900,600 dynamic enhanced
set output 'accuracy_vs_bytes.svg'
set title 'AP50 vs bytes per image (smallest coder per run)'
set xlabel 'bytes per image (log scale)'
set ylabel 'AP50 (%)'
set logscale x 2
set format x '%g'
set grid
set key outside right top
plot 'accuracy_vs_bytes.dat' index 0 using 1:2 with points pt 7 ps 1.1 title 'ptq' noenhanced, \
     'accuracy_vs_bytes.dat' index 1 using 1:2 with points pt 7 ps 1.1 title 'ae' noenhanced, \
     'accuracy_vs_bytes.dat' index 2 using 1:2 with points pt 7 ps 1.1 title 'qcnet' noenhanced, \
     'accuracy_vs_bytes.dat' index 3 using 1:2 with points pt 5 ps 1.6 title 'input_png' noenhanced, \
     'accuracy_vs_bytes.dat' index 4 using 1:2 with points pt 5 ps 1.6 title 'input_webp' noenhanced, \
     'accuracy_vs_bytes.dat' index 5 using 1:2 with points pt 5 ps 1.6 title 'input_jpeg' noenhanced, \
     67.89431666 with lines dt 2 lw 1.5 lc rgb 'black' title 'float model (67.89 %)' noenhanced
unset output
