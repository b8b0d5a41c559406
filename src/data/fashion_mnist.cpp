#include "data/fashion_mnist.h"

#include <zlib.h>

#include <cstring>
#include <filesystem>

#include <torch/torch.h>

namespace splitinfer::data {
namespace {

constexpr uint32_t kIdxUint8Images = 0x00000803;  // magic: unsigned byte, 3 dims
constexpr uint32_t kIdxUint8Labels = 0x00000801;  // magic: unsigned byte, 1 dim
constexpr uint32_t kMaxItems = 10'000'000;        // far above 60,000; bounds any allocation
constexpr uint32_t kMaxSide = 4096;

uint32_t ReadBigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

const std::vector<std::string>& ClassNames() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

}  // namespace

Result<std::string> ReadGzipFile(const std::string& path, size_t max_bytes) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return IoError("cannot open " + path + ": " + std::strerror(errno));
  std::string out;
  char buf[1 << 16];
  int n = 0;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) {
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      gzclose(f);
      return DataLoss(path + " decompresses to more than " + std::to_string(max_bytes) + " bytes; not a dataset file");
    }
    out.append(buf, static_cast<size_t>(n));
  }
  int err = 0;
  const char* msg = gzerror(f, &err);
  std::string detail = (n < 0 && msg != nullptr) ? msg : "";
  gzclose(f);
  if (n < 0) return DataLoss("corrupt gzip file " + path + ": " + detail + " (reinstall dataset-fashion-mnist)");
  return out;
}

Result<torch::Tensor> ParseIdx(const std::string& bytes, int expected_dims, const std::string& what) {
  const size_t header = 4 + 4 * static_cast<size_t>(expected_dims);
  if (bytes.size() < header) return DataLoss(what + ": IDX file truncated inside its header");
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const uint32_t magic = ReadBigEndian32(p);
  const uint32_t want = expected_dims == 3 ? kIdxUint8Images : kIdxUint8Labels;
  if (magic != want) {
    return DataLoss(what + ": bad IDX magic 0x" + [&] {
      char b[16];
      std::snprintf(b, sizeof b, "%08x", magic);
      return std::string(b);
    }() + " (expected uint8 with " + std::to_string(expected_dims) + " dims)");
  }
  std::vector<int64_t> dims;
  uint64_t elements = 1;
  for (int d = 0; d < expected_dims; ++d) {
    const uint32_t v = ReadBigEndian32(p + 4 + 4 * d);
    const uint32_t limit = d == 0 ? kMaxItems : kMaxSide;
    if (v == 0 || v > limit) {
      return DataLoss(what + ": IDX dimension " + std::to_string(d) + " = " + std::to_string(v) + " outside 1.." +
                      std::to_string(limit));
    }
    dims.push_back(v);
    elements *= v;
  }
  if (bytes.size() - header != elements) {
    return DataLoss(what + ": IDX payload has " + std::to_string(bytes.size() - header) + " bytes, header says " +
                    std::to_string(elements));
  }
  auto t = torch::empty(dims, torch::kUInt8);
  std::memcpy(t.data_ptr<uint8_t>(), p + header, elements);
  return t;
}

Result<InMemoryDataset> LoadFashionMnist(Split split, const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string prefix = split == Split::kTrain ? "train" : "t10k";
  const std::string images_path = (fs::path(dir) / (prefix + "-images-idx3-ubyte.gz")).string();
  const std::string labels_path = (fs::path(dir) / (prefix + "-labels-idx1-ubyte.gz")).string();
  for (const auto& p : {images_path, labels_path}) {
    if (!fs::exists(p)) {
      return NotFound("Fashion-MNIST file " + p +
                      " not found; install it with `apt-get install dataset-fashion-mnist` "
                      "(or run scripts/install-deps.sh)");
    }
  }
  SI_ASSIGN_OR_RETURN(std::string image_bytes, ReadGzipFile(images_path, 64u << 20));
  SI_ASSIGN_OR_RETURN(std::string label_bytes, ReadGzipFile(labels_path, 1u << 20));
  SI_ASSIGN_OR_RETURN(torch::Tensor images, ParseIdx(image_bytes, 3, images_path));
  SI_ASSIGN_OR_RETURN(torch::Tensor labels, ParseIdx(label_bytes, 1, labels_path));
  if (images.size(0) != labels.size(0)) {
    return DataLoss("Fashion-MNIST: " + std::to_string(images.size(0)) + " images but " +
                    std::to_string(labels.size(0)) + " labels");
  }
  if (labels.max().item<int64_t>() >= static_cast<int64_t>(ClassNames().size())) {
    return DataLoss("Fashion-MNIST: label out of range 0..9 in " + labels_path);
  }
  return InMemoryDataset(split == Split::kTrain ? "fmnist-train" : "fmnist-test", images.unsqueeze(1),
                         labels.to(torch::kInt64), ClassNames());
}

Normalization FashionMnistNormalization() { return {{0.2860}, {0.3530}}; }

}  // namespace splitinfer::data
