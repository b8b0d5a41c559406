// core/stats: the order statistics benchmarks and profiles report, defined once.
#pragma once

#include <vector>

namespace splitinfer {

// The middle value; the mean of the two middle values for an even count; 0 when empty.
double Median(std::vector<double> values);

// Nearest rank: the smallest value with at least a fraction q of the values at or below it;
// 0 when empty.
double Percentile(std::vector<double> values, double q);

}  // namespace splitinfer
