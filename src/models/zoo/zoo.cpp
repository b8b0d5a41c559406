#include "models/zoo/zoo.h"

#include <functional>
#include <map>

namespace splitinfer::models {
namespace {

using Factory = std::function<BlockChain(const ModelOptions&)>;

const std::map<std::string, Factory>& Registry() {
  static const std::map<std::string, Factory> registry = {
      {"resnet_fmnist", MakeResNetFmnist},   {"resnet18", MakeResNet18},
      {"resnet50", MakeResNet50},            {"convnext_tiny", MakeConvNeXtTiny},
      {"efficientnet_v2_s", MakeEfficientNetV2S}, {"vit_b_16", MakeViTB16},
      {"yolov3_tiny", MakeYoloV3Tiny},
  };
  return registry;
}

}  // namespace

std::vector<std::string> ModelNames() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : Registry()) names.push_back(name);
  return names;
}

ZooDefaults DefaultsFor(const std::string& name) {
  if (name == "resnet_fmnist") {
    return {{/*num_classes=*/10, /*in_channels=*/1, 0, 0}, "classify", {}, {1, 28, 28}, {0.2860}, {0.3530}};
  }
  if (name == "yolov3_tiny") {
    // Darknet's yolov3-tiny.cfg: 416x416 RGB divided by 255, 80 COCO classes, its six anchors.
    ZooDefaults d{{/*num_classes=*/80, /*in_channels=*/3, 0, 0}, "detect", {}, {3, 416, 416}, {0, 0, 0}, {1, 1, 1}};
    d.anchors = {{10, 14}, {23, 27}, {37, 58}, {81, 82}, {135, 169}, {344, 319}};
    return d;
  }
  return {ModelOptions{}, "classify", {}, {3, 224, 224}, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};
}

Result<BlockChain> CreateModel(const std::string& name, const ModelOptions& options) {
  auto it = Registry().find(name);
  if (it == Registry().end()) {
    std::string known;
    for (const auto& n : ModelNames()) known += (known.empty() ? "" : ", ") + n;
    return NotFound("unknown model '" + name + "'; known models: " + known);
  }
  if (options.num_classes < 1 || options.in_channels < 1 || options.width < 0 || options.depth < 0) {
    return InvalidArgument("model options out of range: num_classes and in_channels must be >= 1, width and depth >= 0");
  }
  // resnet_fmnist is a family (width, depth) and yolov3_tiny scales its width; the ImageNet
  // models are fixed torchvision architectures.
  if (name == "yolov3_tiny") {
    if (options.depth != 0) return InvalidArgument("yolov3_tiny has a fixed depth; depth must be 0 (unset)");
  } else if (name != "resnet_fmnist" && (options.width != 0 || options.depth != 0)) {
    return InvalidArgument("model " + name + " has a fixed architecture; width and depth must be 0 (unset)");
  }
  return it->second(options);
}

}  // namespace splitinfer::models
