#include "data/image_folder.h"

#include <algorithm>
#include <cmath>

namespace splitinfer::data {

const char* ResizePolicyName(ResizePolicy p) { return p == ResizePolicy::kStretch ? "stretch" : "center_crop"; }

Result<ResizePolicy> ResizePolicyFromName(const std::string& name) {
  if (name == "center_crop") return ResizePolicy::kCenterCrop;
  if (name == "stretch") return ResizePolicy::kStretch;
  return InvalidArgument("unknown resize policy '" + name + "'; valid: center_crop (resize the shorter side, "
                         "then cut out the centre, as torchvision's models expect), stretch");
}

int64_t DefaultResizeSize(int64_t height, int64_t width) {
  return static_cast<int64_t>(std::lround(static_cast<double>(std::max(height, width)) / 0.875));
}

}  // namespace splitinfer::data

#ifdef SPLITINFER_WITH_OPENCV

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cctype>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/types.h>

namespace splitinfer::data {
namespace {

namespace fs = std::filesystem;

// Largest output side we accept: a 4096 x 4096 RGB image is 48 MiB per example, already far
// beyond any model in the zoo; larger values are almost certainly a typo (e.g. 22400).
constexpr int64_t kMaxSide = 4096;
// We read a whole image file into memory before decoding it; a bigger file is not a photo
// from any dataset we support and reading it could exhaust a Raspberry-Pi-class node.
constexpr std::uintmax_t kMaxImageFileBytes = 256u << 20;
// wnids.txt (200 lines) and val_annotations.txt (10000 lines, ~0.4 MB) are small; the cap
// keeps a wrong path (e.g. a tarball) from being slurped into memory.
constexpr std::uintmax_t kMaxListFileBytes = 64u << 20;

struct Sample {
  std::string path;
  int64_t label;
};

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool IsImageFile(const fs::path& p) {
  const std::string ext = Lower(p.extension().string());
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

// Hidden entries are skipped: macOS leaves "._name.jpg" AppleDouble files (not images, they
// would fail to decode mid-epoch) and tools leave ".ipynb_checkpoints" folders that would
// otherwise become a class.
bool IsHidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

Status ValidateOptions(const ImageFolderOptions& o) {
  if (o.height < 1 || o.height > kMaxSide || o.width < 1 || o.width > kMaxSide) {
    return OutOfRange("image size " + std::to_string(o.height) + "x" + std::to_string(o.width) +
                      " (height x width) outside 1.." + std::to_string(kMaxSide));
  }
  if (o.resize == ResizePolicy::kCenterCrop && o.resize_size != 0 &&
      (o.resize_size < std::max(o.height, o.width) || o.resize_size > 2 * kMaxSide)) {
    return OutOfRange("resize size " + std::to_string(o.resize_size) + " for a " + std::to_string(o.height) + "x" +
                      std::to_string(o.width) + " centre crop: the shorter side must be scaled to at least the " +
                      "crop's larger side, " + std::to_string(std::max(o.height, o.width)) + ", and at most " +
                      std::to_string(2 * kMaxSide) + " (or use the stretch policy)");
  }
  return Status::Ok();
}

// A decoded image brought to h x w by `o.resize`. INTER_AREA averages the source pixels under
// each output pixel, so downscaling does not alias; for enlarging it degenerates towards
// nearest, so bilinear is used there.
cv::Mat ResizeTo(const cv::Mat& img, const ImageFolderOptions& o) {
  const int h = static_cast<int>(o.height), w = static_cast<int>(o.width);
  auto scale = [](const cv::Mat& src, int rows, int cols) {
    if (src.rows == rows && src.cols == cols) return src;
    const bool shrinking = rows <= src.rows && cols <= src.cols;
    cv::Mat out;
    cv::resize(src, out, cv::Size(cols, rows), 0, 0, shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
    return out;
  };
  if (o.resize == ResizePolicy::kStretch) return scale(img, h, w);
  // torchvision's Resize(int): the shorter side becomes `size`, the longer one
  // int(size * long / short) (truncated); CenterCrop: top = int(round((rows - h) / 2)).
  const int size = static_cast<int>(o.resize_size > 0 ? o.resize_size : DefaultResizeSize(o.height, o.width));
  int rows = size, cols = size;
  if (img.rows < img.cols) {
    cols = static_cast<int>(static_cast<int64_t>(size) * img.cols / img.rows);
  } else if (img.cols < img.rows) {
    rows = static_cast<int>(static_cast<int64_t>(size) * img.rows / img.cols);
  }
  const cv::Mat resized = scale(img, rows, cols);
  const int top = static_cast<int>(std::lround((rows - h) / 2.0)), left = static_cast<int>(std::lround((cols - w) / 2.0));
  return resized(cv::Rect(left, top, w, h));
}

Status CheckRootDir(const fs::path& root, const std::string& what) {
  std::error_code ec;
  const fs::file_status st = fs::status(root, ec);
  // ENOTDIR: a component of the path is a file, which for the user means "no such folder".
  if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory) {
    return IoError("cannot stat " + what + " root " + root.string() + ": " + ec.message());
  }
  if (!fs::exists(st)) return NotFound(what + " root " + root.string() + " does not exist");
  if (!fs::is_directory(st)) {
    return InvalidArgument(what + " root " + root.string() + " is not a directory");
  }
  return Status::Ok();
}

// Non-hidden sub-directories of dir, sorted by name (byte order, as torchvision's sorted()).
Result<std::vector<std::string>> ListSubdirs(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::error_code st_ec;
    if (IsHidden(it->path()) || !it->is_directory(st_ec)) continue;
    names.push_back(it->path().filename().string());
  }
  if (ec) return IoError("cannot list " + dir.string() + ": " + ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

// Image files under dir, sorted so that index -> file is the same on every machine. Recurses
// (as torchvision's ImageFolder does) but does not follow directory symlinks, because
// std::filesystem does not detect symlink cycles.
Result<std::vector<std::string>> ListImages(const fs::path& dir, bool recursive) {
  std::vector<std::string> files;
  std::error_code ec;
  auto visit = [&](const fs::directory_entry& e) {
    std::error_code st_ec;
    if (IsHidden(e.path())) return false;  // caller stops descent into hidden folders
    if (e.is_regular_file(st_ec) && IsImageFile(e.path())) files.push_back(e.path().string());
    return true;
  };
  if (recursive) {
    fs::recursive_directory_iterator it(dir, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      if (!visit(*it)) {
        std::error_code dir_ec;
        if (it->is_directory(dir_ec)) it.disable_recursion_pending();
      }
    }
  } else {
    fs::directory_iterator it(dir, ec), end;
    for (; !ec && it != end; it.increment(ec)) visit(*it);
  }
  if (ec) return IoError("cannot list " + dir.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());
  return files;
}

Result<std::string> ReadSmallFile(const fs::path& path, std::uintmax_t max_bytes) {
  std::error_code ec;
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) return IoError("cannot stat " + path.string() + ": " + ec.message());
  if (size > max_bytes) {
    return OutOfRange(path.string() + " is " + std::to_string(size) + " bytes, over the " +
                      std::to_string(max_bytes) + "-byte limit for this file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return IoError("cannot open " + path.string());
  std::string data(static_cast<size_t>(size), '\0');
  in.read(data.data(), static_cast<std::streamsize>(size));
  if (in.gcount() != static_cast<std::streamsize>(size)) {
    return IoError("short read of " + path.string() + " (file changed while reading?)");
  }
  return data;
}

// Splits into lines, dropping a trailing '\r' (files edited on Windows) and the empty piece
// after a final newline. Line numbers are index + 1.
std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(start, nl - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = nl + 1;
  }
  return lines;
}

std::string Trim(const std::string& s) {
  const char* ws = " \t";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::vector<std::string> SplitTabs(const std::string& line) {
  std::vector<std::string> fields;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    fields.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) break;
    start = tab + 1;
  }
  return fields;
}

// A name from a list file becomes a path component: reject anything that could escape the
// dataset folder or that no TinyImageNet file name contains.
bool IsSafeName(const std::string& s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (unsigned char c : s) {
    if (c == '/' || c == '\\' || c == '\0' || std::isspace(c) || !std::isprint(c)) return false;
  }
  return true;
}

class ImageFolderDataset final : public Dataset {
 public:
  ImageFolderDataset(std::string name, std::vector<Sample> samples,
                     std::vector<std::string> class_names, ImageFolderOptions options)
      : name_(std::move(name)),
        samples_(std::move(samples)),
        class_names_(std::move(class_names)),
        options_(options) {}

  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }

  Result<torch::Tensor> image(int64_t index) const override {
    if (index < 0 || index >= size()) {
      return OutOfRange("image index " + std::to_string(index) + " outside 0.." +
                        std::to_string(size() - 1) + " of " + name_);
    }
    const std::string& path = samples_[static_cast<size_t>(index)].path;

    // Read the bytes ourselves rather than cv::imread: imread returns the same empty Mat for a
    // missing file, a permission error and a corrupt image, and we want distinct codes.
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      return NotFound("image " + path + " was listed when " + name_ +
                      " was loaded but no longer exists");
    }
    SI_ASSIGN_OR_RETURN(std::string bytes, ReadSmallFile(path, kMaxImageFileBytes));
    if (bytes.empty()) {
      return DataLoss("cannot decode image " + path + ": empty file; remove or replace it");
    }

    // OpenCV refuses images above CV_IO_MAX_IMAGE_PIXELS (2^30 by default) before allocating,
    // which bounds what a hostile header can make us allocate.
    cv::Mat decoded;
    try {
      const cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8UC1, bytes.data());
      decoded = cv::imdecode(raw, options_.grayscale ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
    } catch (const cv::Exception&) {
      decoded.release();  // some codecs throw on corrupt data instead of returning empty
    }
    if (decoded.empty()) {
      return DataLoss("cannot decode image " + path + ": not a JPEG/PNG or corrupt; remove or replace it");
    }
    // Without IMREAD_ANYDEPTH OpenCV converts 16-bit PNGs to 8 bit; IMREAD_COLOR expands
    // gray/alpha to 3 channels and IMREAD_GRAYSCALE collapses to 1.
    assert(decoded.depth() == CV_8U);
    assert(decoded.channels() == (options_.grayscale ? 1 : 3));

    try {
      cv::Mat img = decoded;
      if (!options_.grayscale) cv::cvtColor(decoded, img, cv::COLOR_BGR2RGB);  // models expect RGB
      img = ResizeTo(img, options_);
      if (!img.isContinuous()) img = img.clone();  // a crop is a view with the source's stride
      // from_blob borrows the Mat's buffer; the clone copies it (HWC -> CHW) into memory the
      // tensor owns before the Mat goes out of scope. One copy for both 1 and 3 channels.
      const int64_t c = img.channels();
      torch::Tensor hwc = torch::from_blob(img.data, {img.rows, img.cols, c}, torch::kUInt8);
      return hwc.permute({2, 0, 1}).clone(at::MemoryFormat::Contiguous);
    } catch (const cv::Exception& e) {
      return Internal("OpenCV failed on " + path + ": " + e.what());
    } catch (const c10::Error& e) {
      return Internal("LibTorch failed on " + path + ": " + e.what_without_backtrace());
    }
  }

  int64_t label(int64_t index) const override {
    assert(index >= 0 && index < size());
    return samples_[static_cast<size_t>(index)].label;
  }

  std::vector<std::string> class_names() const override { return class_names_; }

  std::vector<int64_t> image_shape() const override {
    return {options_.grayscale ? 1 : 3, options_.height, options_.width};
  }

  std::string name() const override { return name_; }

 private:
  std::string name_;
  std::vector<Sample> samples_;
  std::vector<std::string> class_names_;
  ImageFolderOptions options_;
};

// wnids.txt if present (one wnid per line), else the folders under train/. Sorted either way
// so that label i means the same class in both splits and on every machine.
Result<std::vector<std::string>> TinyImageNetWnids(const fs::path& root) {
  const fs::path wnids_file = root / "wnids.txt";
  std::error_code ec;
  if (fs::exists(wnids_file, ec)) {
    SI_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(wnids_file, kMaxListFileBytes));
    const std::vector<std::string> lines = SplitLines(text);
    std::vector<std::string> wnids;
    std::set<std::string> seen;
    for (size_t i = 0; i < lines.size(); ++i) {
      const std::string where = wnids_file.string() + ":" + std::to_string(i + 1);
      const std::string wnid = Trim(lines[i]);
      if (wnid.empty()) continue;  // a blank trailing line is harmless
      if (!IsSafeName(wnid)) {
        return DataLoss(where + ": '" + wnid.substr(0, 80) + "' is not a wnid (expected e.g. n01443537)");
      }
      if (!seen.insert(wnid).second) return DataLoss(where + ": duplicate wnid " + wnid);
      wnids.push_back(wnid);
    }
    if (wnids.empty()) return DataLoss(wnids_file.string() + " lists no wnids");
    std::sort(wnids.begin(), wnids.end());
    return wnids;
  }
  const fs::path train = root / "train";
  if (!fs::is_directory(train, ec)) {
    return NotFound("not a TinyImageNet root: " + root.string() +
                    " has neither wnids.txt nor train/ (expected the tiny-imagenet-200 folder)");
  }
  SI_ASSIGN_OR_RETURN(std::vector<std::string> wnids, ListSubdirs(train));
  if (wnids.empty()) return InvalidArgument(train.string() + " has no class folders");
  return wnids;
}

Result<std::vector<Sample>> TinyImageNetTrain(const fs::path& root,
                                              const std::vector<std::string>& wnids) {
  std::vector<Sample> samples;
  for (size_t label = 0; label < wnids.size(); ++label) {
    const fs::path dir = root / "train" / wnids[label] / "images";
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      return NotFound("TinyImageNet class " + wnids[label] + " has no folder " + dir.string());
    }
    SI_ASSIGN_OR_RETURN(std::vector<std::string> files, ListImages(dir, /*recursive=*/false));
    if (files.empty()) {
      return DataLoss(dir.string() + " has no .JPEG images (incomplete download?)");
    }
    for (auto& f : files) samples.push_back({std::move(f), static_cast<int64_t>(label)});
  }
  return samples;
}

// val/val_annotations.txt: "<file>\t<wnid>\t<x0>\t<y0>\t<x1>\t<y1>" per line; the bounding box
// is ignored. Every line is checked, and an error names file:line, because a silently
// mislabelled validation set corrupts every accuracy number computed from it.
Result<std::vector<Sample>> TinyImageNetVal(const fs::path& root,
                                            const std::vector<std::string>& wnids) {
  const fs::path ann = root / "val" / "val_annotations.txt";
  const fs::path images = root / "val" / "images";
  std::error_code ec;
  if (!fs::exists(ann, ec)) return NotFound("TinyImageNet validation labels " + ann.string() + " do not exist");
  if (!fs::is_directory(images, ec)) return NotFound("TinyImageNet validation images " + images.string() + " do not exist");

  std::map<std::string, int64_t> label_of;
  for (size_t i = 0; i < wnids.size(); ++i) label_of[wnids[i]] = static_cast<int64_t>(i);

  SI_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(ann, kMaxListFileBytes));
  const std::vector<std::string> lines = SplitLines(text);
  std::vector<Sample> samples;
  std::set<std::string> seen;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string where = ann.string() + ":" + std::to_string(i + 1);
    if (lines[i].empty()) continue;
    const std::vector<std::string> fields = SplitTabs(lines[i]);
    if (fields.size() < 2) {
      return DataLoss(where + ": expected '<file>\\t<wnid>\\t...' (tab-separated), got '" +
                      lines[i].substr(0, 80) + "'");
    }
    const std::string& file = fields[0];
    const std::string& wnid = fields[1];
    if (!IsSafeName(file)) return DataLoss(where + ": '" + file + "' is not a file name");
    const auto it = label_of.find(wnid);
    if (it == label_of.end()) {
      return DataLoss(where + ": unknown wnid '" + wnid + "' (not in wnids.txt / train/)");
    }
    if (!seen.insert(file).second) return DataLoss(where + ": " + file + " is labelled twice");
    const fs::path path = images / file;
    if (!fs::is_regular_file(path, ec)) {
      return NotFound(where + ": labelled image " + path.string() + " does not exist");
    }
    samples.push_back({path.string(), it->second});
  }
  if (samples.empty()) return DataLoss(ann.string() + " labels no images");
  std::sort(samples.begin(), samples.end(),
            [](const Sample& a, const Sample& b) { return a.path < b.path; });
  return samples;
}

}  // namespace

Result<std::unique_ptr<Dataset>> LoadImageFolder(const std::string& root, const ImageFolderOptions& options) {
  SI_RETURN_IF_ERROR(ValidateOptions(options));
  const fs::path dir(root);
  SI_RETURN_IF_ERROR(CheckRootDir(dir, "image folder"));
  SI_ASSIGN_OR_RETURN(std::vector<std::string> classes, ListSubdirs(dir));
  if (classes.empty()) {
    return InvalidArgument("image folder " + root + " has no class sub-folders (expected root/<class>/<image>)");
  }
  std::vector<Sample> samples;
  for (size_t label = 0; label < classes.size(); ++label) {
    SI_ASSIGN_OR_RETURN(std::vector<std::string> files, ListImages(dir / classes[label], /*recursive=*/true));
    // As torchvision: an empty class is an error, not a silent label nobody can predict.
    if (files.empty()) {
      return InvalidArgument("class folder " + (dir / classes[label]).string() +
                             " has no .jpg/.jpeg/.png images");
    }
    for (auto& f : files) samples.push_back({std::move(f), static_cast<int64_t>(label)});
  }
  return std::unique_ptr<Dataset>(std::make_unique<ImageFolderDataset>(
      "imagefolder:" + root, std::move(samples), std::move(classes), options));
}

Result<std::unique_ptr<Dataset>> LoadTinyImageNet(const std::string& root, Split split,
                                                  const ImageFolderOptions& options) {
  SI_RETURN_IF_ERROR(ValidateOptions(options));
  const fs::path dir(root);
  SI_RETURN_IF_ERROR(CheckRootDir(dir, "TinyImageNet"));
  SI_ASSIGN_OR_RETURN(std::vector<std::string> wnids, TinyImageNetWnids(dir));
  std::vector<Sample> samples;
  if (split == Split::kTrain) {
    SI_ASSIGN_OR_RETURN(samples, TinyImageNetTrain(dir, wnids));
  } else {
    SI_ASSIGN_OR_RETURN(samples, TinyImageNetVal(dir, wnids));
  }
  return std::unique_ptr<Dataset>(std::make_unique<ImageFolderDataset>(
      "tinyimagenet:" + root, std::move(samples), std::move(wnids), options));
}

}  // namespace splitinfer::data

#else  // !SPLITINFER_WITH_OPENCV

namespace splitinfer::data {

Result<std::unique_ptr<Dataset>> LoadImageFolder(const std::string&, const ImageFolderOptions&) {
  return Unimplemented("image folders need OpenCV: install libopencv-dev and rebuild");
}

Result<std::unique_ptr<Dataset>> LoadTinyImageNet(const std::string&, Split, const ImageFolderOptions&) {
  return Unimplemented("image folders need OpenCV: install libopencv-dev and rebuild");
}

}  // namespace splitinfer::data

#endif  // SPLITINFER_WITH_OPENCV
