# Re-plot from this folder with: gnuplot resnet50_pi4_b2.svg.gp
set terminal svg size 800,500 dynamic
set output 'resnet50_pi4_b2.svg'
set logscale x
set xlabel 'link rate (MB/s)'
set ylabel 'end-to-end latency (ms)'
set title 'resnet50: node raspberry-pi-4 (derived), server 2 cores, AMD EPYC' noenhanced
set key top right
set grid
plot 'resnet50_pi4_b2.svg.dat' using 1:2 with lines lw 2 title 'node-only', '' using 1:3 with lines lw 2 title 'server-only', '' using 1:4 with lines lw 2 title 'best split'
