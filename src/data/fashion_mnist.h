// Fashion-MNIST, read straight from Debian's dataset-fashion-mnist package: gzip IDX files,
// decompressed in-process with zlib. Every header field is checked before anything is sized
// from it, so a corrupt or truncated file is a DATA_LOSS error, never a huge allocation.
#pragma once

#include <string>

#include "data/dataset.h"

namespace splitinfer::data {

inline constexpr const char* kFashionMnistDefaultDir = "/usr/share/datasets/fashion-mnist";

// NOT_FOUND (naming the Debian package) when the files are missing; DATA_LOSS when corrupt.
Result<InMemoryDataset> LoadFashionMnist(Split split, const std::string& dir = kFashionMnistDefaultDir);

// The channel statistics of the Fashion-MNIST training set (computed by tests/data to check).
Normalization FashionMnistNormalization();

// Parses one IDX file's bytes (already decompressed). Exposed for tests and fuzzing.
// expected_dims: 3 for images (N, rows, cols), 1 for labels (N).
Result<torch::Tensor> ParseIdx(const std::string& bytes, int expected_dims, const std::string& what);

// Reads a whole gzip file into memory, bounded by max_bytes.
Result<std::string> ReadGzipFile(const std::string& path, size_t max_bytes);

}  // namespace splitinfer::data
