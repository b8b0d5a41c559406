#include "data/scenes.h"

#include <nlohmann/json.hpp>

#include "config/yaml_reader.h"

namespace splitinfer::data {

nlohmann::json SceneParams::ToJson() const {
  return {{"canvas", canvas},
          {"min_objects", min_objects},
          {"max_objects", max_objects},
          {"min_scale", min_scale},
          {"max_scale", max_scale},
          {"max_iou", max_iou},
          {"placement_tries", placement_tries},
          {"background_min", background_min},
          {"background_max", background_max},
          {"gradient", gradient},
          {"texture", texture},
          {"texture_blur", texture_blur},
          {"grain", grain},
          {"box_threshold", box_threshold},
          {"train_scenes", train_scenes},
          {"test_scenes", test_scenes},
          {"seed", seed}};
}

Result<SceneParams> LoadSceneParams(const std::string& path) {
  SI_ASSIGN_OR_RETURN(YAML::Node root, config::LoadYamlFile(path, "scenes file " + path + " not found"));
  config::MapReader r(root, "", path);
  SI_RETURN_IF_ERROR(r.check_is_map("the scene generator's parameters (configs/data/scenes.yaml)"));
  SceneParams p;
  SI_RETURN_IF_ERROR(r.get_in<int64_t>("canvas", &p.canvas, 32, 4096));
  SI_RETURN_IF_ERROR(r.get_in<int64_t>("min_objects", &p.min_objects, 0, 100));
  SI_RETURN_IF_ERROR(r.get_in<int64_t>("max_objects", &p.max_objects, 1, 100));
  SI_RETURN_IF_ERROR(r.get_in("min_scale", &p.min_scale, 0.1, 20.0));
  SI_RETURN_IF_ERROR(r.get_in("max_scale", &p.max_scale, 0.1, 20.0));
  SI_RETURN_IF_ERROR(r.get_in("max_iou", &p.max_iou, 0.0, 1.0));
  SI_RETURN_IF_ERROR(r.get_in<int64_t>("placement_tries", &p.placement_tries, 1, 10000));
  SI_RETURN_IF_ERROR(r.get_in("background_min", &p.background_min, 0.0, 255.0));
  SI_RETURN_IF_ERROR(r.get_in("background_max", &p.background_max, 0.0, 255.0));
  SI_RETURN_IF_ERROR(r.get_in("gradient", &p.gradient, 0.0, 255.0));
  SI_RETURN_IF_ERROR(r.get_in("texture", &p.texture, 0.0, 128.0));
  SI_RETURN_IF_ERROR(r.get_in("texture_blur", &p.texture_blur, 0.0, 64.0));
  SI_RETURN_IF_ERROR(r.get_in("grain", &p.grain, 0.0, 128.0));
  SI_RETURN_IF_ERROR(r.get_in<int64_t>("box_threshold", &p.box_threshold, 0, 254));
  SI_RETURN_IF_ERROR(r.get_in<int64_t>("train_scenes", &p.train_scenes, 0, 10000000));
  SI_RETURN_IF_ERROR(r.get_in<int64_t>("test_scenes", &p.test_scenes, 0, 10000000));
  SI_RETURN_IF_ERROR(r.get("seed", &p.seed));
  SI_RETURN_IF_ERROR(r.finish());
  if (p.min_objects > p.max_objects || p.min_scale > p.max_scale || p.background_min > p.background_max) {
    return InvalidArgument(path + ": min_objects, min_scale and background_min must not exceed their max_");
  }
  if (static_cast<double>(p.canvas) < 28.0 * p.max_scale) {
    return InvalidArgument(path + ": canvas " + std::to_string(p.canvas) + " is smaller than the largest item (28 x " +
                           std::to_string(p.max_scale) + " pixels)");
  }
  return p;
}

}  // namespace splitinfer::data

#ifndef SPLITINFER_WITH_OPENCV

namespace splitinfer::data {
Result<ScenesReport> MakeScenes(const SceneParams&, const std::string&, const std::string&, bool) {
  return Unimplemented("make-scenes writes PNG files with OpenCV, which this build lacks (apt-get install "
                       "libopencv-dev, then rebuild)");
}
}  // namespace splitinfer::data

#else

#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "core/progress.h"
#include "core/box.h"
#include "core/random.h"
#include "data/fashion_mnist.h"

namespace splitinfer::data {
namespace {

namespace fs = std::filesystem;

// The scene's own random stream, seeded from (seed, split, index): every scene is reproducible
// alone.
SplitMix64 SceneRng(uint64_t seed, uint64_t split, uint64_t index) {
  const uint64_t s1 = SplitMix64(seed).Next() ^ (split * 0x9E3779B97F4A7C15ull);
  return SplitMix64(SplitMix64(s1).Next() ^ (index * 0xBF58476D1CE4E5B9ull));
}

struct Box {
  double x, y, w, h;
};

double Iou(const Box& a, const Box& b) { return BoxIou(a.x, a.y, a.w, a.h, b.x, b.y, b.w, b.h); }

cv::Mat Background(const SceneParams& p, SplitMix64& rng) {
  const int n = static_cast<int>(p.canvas);
  cv::Mat bg(n, n, CV_32F, cv::Scalar(rng.Uniform(p.background_min, p.background_max)));
  const double angle = rng.Uniform(0, 2 * M_PI), ramp = rng.Uniform(0, p.gradient);
  cv::Mat field(n, n, CV_32F), grain(n, n, CV_32F);
  for (int y = 0; y < n; ++y) {
    for (int x = 0; x < n; ++x) {
      field.at<float>(y, x) = static_cast<float>(rng.Normal());
      grain.at<float>(y, x) = static_cast<float>(rng.Normal() * p.grain);
    }
  }
  if (p.texture_blur > 0) cv::GaussianBlur(field, field, cv::Size(0, 0), p.texture_blur);
  cv::Scalar mean, stddev;
  cv::meanStdDev(field, mean, stddev);
  const double scale = stddev[0] > 0 ? p.texture / stddev[0] : 0.0;
  for (int y = 0; y < n; ++y) {
    for (int x = 0; x < n; ++x) {
      const double along = ((x - n / 2.0) * std::cos(angle) + (y - n / 2.0) * std::sin(angle)) / n;
      bg.at<float>(y, x) += static_cast<float>(ramp * along + (field.at<float>(y, x) - mean[0]) * scale) +
                            grain.at<float>(y, x);
    }
  }
  return bg;
}

struct SplitOut {
  nlohmann::json images = nlohmann::json::array(), annotations = nlohmann::json::array();
  int64_t objects = 0, dropped = 0;
};

Status MakeSplit(const SceneParams& p, Split split, int64_t count, const InMemoryDataset& items, const fs::path& dir,
                 SplitOut& out, bool progress) {
  const char* name = split == Split::kTrain ? "train" : "test";
  std::error_code ec;
  fs::create_directories(dir / name, ec);
  if (ec) return IoError("cannot create " + (dir / name).string() + ": " + ec.message());
  ProgressBar bar(stderr, std::string("make-scenes ") + name, count);
  const int n = static_cast<int>(p.canvas);
  int64_t annotation_id = 1;
  for (int64_t i = 0; i < count; ++i) {
    SplitMix64 rng = SceneRng(p.seed, split == Split::kTrain ? 1 : 2, static_cast<uint64_t>(i));
    cv::Mat canvas = Background(p, rng);
    std::vector<Box> boxes;
    const int64_t objects = rng.Int(p.min_objects, p.max_objects);
    for (int64_t o = 0; o < objects; ++o) {
      bool placed = false;
      for (int64_t t = 0; t < p.placement_tries && !placed; ++t) {
        const int64_t index = rng.Int(0, items.size() - 1);
        const double scale = rng.Uniform(p.min_scale, p.max_scale);
        const int side = std::max(1, static_cast<int>(std::lround(28.0 * scale)));
        SI_ASSIGN_OR_RETURN(torch::Tensor img, items.image(index));  // uint8 [1, 28, 28]
        img = img.contiguous();
        const cv::Mat src(28, 28, CV_8UC1, img.data_ptr<uint8_t>());
        cv::Mat item;
        cv::resize(src, item, cv::Size(side, side), 0, 0, side < 28 ? cv::INTER_AREA : cv::INTER_LINEAR);
        // The tight box and the area: the item's pixels above the threshold.
        int x0 = side, y0 = side, x1 = -1, y1 = -1;
        int64_t area = 0;
        for (int y = 0; y < side; ++y) {
          for (int x = 0; x < side; ++x) {
            if (item.at<uint8_t>(y, x) > p.box_threshold) {
              x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
              ++area;
            }
          }
        }
        if (area == 0) continue;  // a blank item: draw another
        const int px = static_cast<int>(rng.Int(0, n - side)), py = static_cast<int>(rng.Int(0, n - side));
        const Box box{static_cast<double>(px + x0), static_cast<double>(py + y0), static_cast<double>(x1 - x0 + 1),
                      static_cast<double>(y1 - y0 + 1)};
        bool clear = true;
        for (const auto& b : boxes) clear = clear && Iou(box, b) <= p.max_iou;
        if (!clear) continue;
        // Blended in by its own brightness: dark item pixels let the background through.
        for (int y = 0; y < side; ++y) {
          for (int x = 0; x < side; ++x) {
            const float v = item.at<uint8_t>(y, x), a = v / 255.0f;
            float& c = canvas.at<float>(py + y, px + x);
            c = c * (1.0f - a) + v * a;
          }
        }
        boxes.push_back(box);
        out.annotations.push_back({{"id", annotation_id++},
                                   {"image_id", i + 1},
                                   {"category_id", items.label(index) + 1},
                                   {"bbox", {box.x, box.y, box.w, box.h}},
                                   {"area", area},
                                   {"iscrowd", 0},
                                   {"source", {{"split", name}, {"index", index}, {"scale", scale}}}});
        placed = true;
      }
      if (placed) {
        ++out.objects;
      } else {
        ++out.dropped;
      }
    }
    cv::Mat pixels;
    canvas.convertTo(pixels, CV_8U);  // rounds and saturates to 0..255
    char file[32];
    std::snprintf(file, sizeof file, "%06lld.png", static_cast<long long>(i + 1));
    std::vector<uint8_t> png;
    if (!cv::imencode(".png", pixels, png)) return IoError(std::string("cannot encode scene ") + file);
    std::ofstream f(dir / name / file, std::ios::binary);
    f.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
    if (!f) return IoError("cannot write " + (dir / name / file).string());
    out.images.push_back({{"id", i + 1}, {"file_name", file}, {"width", n}, {"height", n}});
    if (progress && (i + 1) % 500 == 0) bar.update(i + 1, i + 1, "");
  }
  if (progress) bar.finish(std::to_string(out.objects) + " objects");
  return Status::Ok();
}

}  // namespace

Result<ScenesReport> MakeScenes(const SceneParams& p, const std::string& out_dir, const std::string& fmnist_dir,
                                bool progress) {
  const fs::path dir(out_dir);
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_empty(dir, ec)) {
    return FailedPrecondition(out_dir + " exists and is not empty: make-scenes writes a whole dataset into a new "
                              "folder (remove it, or pick another --out)");
  }
  fs::create_directories(dir / "annotations", ec);
  if (ec) return IoError("cannot create " + (dir / "annotations").string() + ": " + ec.message());
  ScenesReport report;
  for (Split split : {Split::kTrain, Split::kTest}) {
    const int64_t count = split == Split::kTrain ? p.train_scenes : p.test_scenes;
    SI_ASSIGN_OR_RETURN(auto items, LoadFashionMnist(split, fmnist_dir.empty() ? kFashionMnistDefaultDir : fmnist_dir));
    SplitOut out;
    SI_RETURN_IF_ERROR(MakeSplit(p, split, count, items, dir, out, progress));
    nlohmann::json categories = nlohmann::json::array();
    const auto names = items.class_names();
    for (size_t c = 0; c < names.size(); ++c) categories.push_back({{"id", c + 1}, {"name", names[c]}});
    const nlohmann::json coco = {
        {"info",
         {{"description", "splitinfer make-scenes: synthetic layouts of real Fashion-MNIST items"},
          {"parameters", p.ToJson()}}},
        {"images", out.images},
        {"categories", categories},
        {"annotations", out.annotations}};
    const char* name = split == Split::kTrain ? "train" : "test";
    std::ofstream f(dir / "annotations" / (std::string("instances_") + name + ".json"));
    f << coco.dump() << "\n";
    if (!f) return IoError("cannot write the annotations of " + std::string(name));
    (split == Split::kTrain ? report.train_scenes : report.test_scenes) = count;
    (split == Split::kTrain ? report.train_objects : report.test_objects) = out.objects;
    report.dropped_objects += out.dropped;
  }
  nlohmann::json meta = {{"generator", "splitinfer data make-scenes"},
                         {"parameters", p.ToJson()},
                         {"train_scenes", report.train_scenes},
                         {"test_scenes", report.test_scenes},
                         {"train_objects", report.train_objects},
                         {"test_objects", report.test_objects},
                         {"dropped_objects", report.dropped_objects}};
  std::ofstream(dir / "scenes.json") << meta.dump(1) << "\n";
  return report;
}


}  // namespace splitinfer::data

#endif

// Outside the OpenCV part: without OpenCV, MakeScenes says what is missing.
#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace splitinfer::data {
namespace fs = std::filesystem;

Result<std::string> EnsureScenes(const std::string& config_path, bool progress) {
  SI_ASSIGN_OR_RETURN(const SceneParams params, LoadSceneParams(config_path));
  const std::string text = params.ToJson().dump();
  char name[32];
  std::snprintf(name, sizeof name, "scenes-%08lx",
                crc32(0L, reinterpret_cast<const Bytef*>(text.data()), static_cast<uInt>(text.size())));
  fs::path cache;
  if (const char* c = std::getenv("SPLITINFER_CACHE"); c != nullptr && *c != '\0') {
    cache = c;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0') {
    cache = fs::path(x) / "splitinfer";
  } else if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') {
    cache = fs::path(h) / ".cache" / "splitinfer";
  } else {
    return FailedPrecondition("no cache folder for scenes:" + config_path +
                              " (set SPLITINFER_CACHE, or make them with `splitinfer data make-scenes` and use coco:DIR)");
  }
  const fs::path dir = cache / name;
  std::error_code ec;
  if (fs::is_regular_file(dir / "scenes.json", ec)) {
    std::ifstream in(dir / "scenes.json");
    const auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.value("parameters", nlohmann::json()) == params.ToJson()) return dir.string();
    return FailedPrecondition(dir.string() + " holds scenes of other parameters than " + config_path +
                              " (a checksum collision, or an edited folder): remove it and run again");
  }
  fs::create_directories(cache, ec);
  if (ec) return IoError("cannot create the cache folder " + cache.string() + ": " + ec.message());
  const fs::path tmp = cache / (std::string(name) + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  if (progress) std::fprintf(stderr, "scenes:%s: making them once in %s\n", config_path.c_str(), dir.string().c_str());
  auto made = MakeScenes(params, tmp.string(), "", progress);
  if (!made.ok()) {
    fs::remove_all(tmp, ec);
    return made.status();
  }
  fs::rename(tmp, dir, ec);
  if (ec && !fs::is_regular_file(dir / "scenes.json")) {  // another process may have won the race: fine
    return IoError("cannot move " + tmp.string() + " to " + dir.string() + ": " + ec.message());
  }
  fs::remove_all(tmp, ec);
  return dir.string();
}

}  // namespace splitinfer::data
