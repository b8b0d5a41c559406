#include "tools/cli/model_args.h"

namespace splitinfer::cli {

void AddModelOptions(CLI::App* cmd, ModelArgs& a, bool required) {
  auto* opt = cmd->add_option("--model,--checkpoint", a.ref,
                              "the model: a zoo name (random weights), a checkpoint from `splitinfer train`, or a "
                              "TorchScript file (tools/export_torchscript.py); told apart by content");
  if (required) opt->required();
  cmd->add_option("--input-shape", a.input_shape, "TorchScript without metadata: input C x H x W, e.g. 3x224x224");
  cmd->add_option("--mean", a.mean, "TorchScript without metadata: per-channel mean, e.g. 0.485,0.456,0.406");
  cmd->add_option("--std", a.std, "TorchScript without metadata: per-channel std, e.g. 0.229,0.224,0.225");
  cmd->add_option("--classes", a.classes,
                  "TorchScript: class names (a count, a file with one per line, or names separated by commas)");
  cmd->add_option("--split-points", a.split_points,
                  "TorchScript: the blocks that may be cut after, separated by commas (default: every block)");
  cmd->add_option("--resize", a.resize,
                  "TorchScript: how folder images of another size reach the input size: center_crop (the default, "
                  "as torchvision's models expect: shorter side to H/0.875, then the centre), center_crop:N "
                  "(shorter side to N first) or stretch");
}

Result<models::ModelMetaFlags> MetaFlags(const ModelArgs& a) {
  models::ModelMetaFlags f;
  if (!a.input_shape.empty()) {
    SI_ASSIGN_OR_RETURN(f.input_shape, models::ParseInputShape(a.input_shape));
  }
  if (!a.mean.empty()) {
    SI_ASSIGN_OR_RETURN(f.mean, models::ParseNumberList("--mean", a.mean));
  }
  if (!a.std.empty()) {
    SI_ASSIGN_OR_RETURN(f.std, models::ParseNumberList("--std", a.std));
  }
  if (!a.classes.empty()) {
    SI_ASSIGN_OR_RETURN(f.class_names, models::ParseClassNames(a.classes));
  }
  if (!a.resize.empty()) {
    const auto colon = a.resize.find(':');
    f.resize = a.resize.substr(0, colon);
    if (f.resize != "center_crop" && f.resize != "stretch") {
      return InvalidArgument("--resize '" + a.resize + "': expected center_crop, center_crop:N or stretch");
    }
    if (colon != std::string::npos) {
      const std::string n = a.resize.substr(colon + 1);
      if (f.resize != "center_crop" || n.empty() || n.find_first_not_of("0123456789") != std::string::npos ||
          n.size() > 5 || std::stoll(n) < 1) {
        return InvalidArgument("--resize '" + a.resize + "': expected center_crop:N with N the shorter side in pixels");
      }
      f.resize_size = std::stoll(n);
    }
  }
  if (!a.split_points.empty()) {
    std::string cur;
    for (char c : a.split_points + ",") {
      if (c != ',') {
        cur += c;
      } else if (!cur.empty()) {
        f.split_points.push_back(cur);
        cur.clear();
      }
    }
  }
  return f;
}

}  // namespace splitinfer::cli
