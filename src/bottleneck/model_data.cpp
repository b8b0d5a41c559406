#include "bottleneck/model_data.h"

#include <nlohmann/json.hpp>

#include "data/datasets.h"

namespace splitinfer::bottleneck {

Result<data::ImageOptions> ImagesFor(const models::CheckpointMeta& meta) {
  data::ImageOptions o;
  if (meta.input_shape.size() == 3) {
    o.channels = meta.input_shape[0];
    o.height = meta.input_shape[1];
    o.width = meta.input_shape[2];
  }
  SI_ASSIGN_OR_RETURN(o.resize, data::ResizePolicyFromName(meta.resize));
  o.resize_size = meta.resize_size;
  return o;
}

Status CheckDatasetFits(const models::CheckpointMeta& meta, const data::Dataset& data) {
  SI_RETURN_IF_ERROR(models::RequireClassifier(meta, "this command"));
  const data::Dataset* dataset = &data;
  if (dataset->image_shape() != meta.input_shape) {
    return Mismatch("model " + meta.model + " expects images of shape " + nlohmann::json(meta.input_shape).dump() +
                    " but dataset " + dataset->name() + " has " + nlohmann::json(dataset->image_shape()).dump());
  }
  return CheckClassNames(meta, dataset->class_names(), dataset->name());
}

Status CheckClassNames(const models::CheckpointMeta& meta, const std::vector<std::string>& names,
                       const std::string& dataset) {
  bool numbered = true;
  for (size_t c = 0; c < meta.class_names.size(); ++c) numbered = numbered && meta.class_names[c] == std::to_string(c);
  // A model whose classes are only numbered (a zoo name's random weights, a file without names)
  // takes a folder with fewer classes, folder class i as class i: e.g. a few photographs to time
  // an ImageNet model on (tools/skimage_photos.py).
  if (names.size() != meta.class_names.size() && !(numbered && names.size() < meta.class_names.size())) {
    return Mismatch("model " + meta.model + " has " + std::to_string(meta.class_names.size()) + " classes but dataset " +
                    dataset + " has " + std::to_string(names.size()));
  }
  for (size_t c = 0; c < names.size() && !numbered; ++c) {
    if (names[c] != meta.class_names[c]) {
      return Mismatch("class " + std::to_string(c) + " is '" + meta.class_names[c] + "' in model " + meta.model +
                      " but '" + names[c] + "' in dataset " + dataset +
                      " (a different class order gives wrong answers; rename the folders or give --classes)");
    }
  }
  return Status::Ok();
}

Result<std::unique_ptr<data::CocoDetectionDataset>> OpenDetectionDataFor(const models::CheckpointMeta& meta,
                                                                        const std::string& data, data::Split split,
                                                                        bool progress) {
  if (!models::IsDetector(meta)) {
    return InvalidArgument(meta.model + " is a classifier (task " + meta.task + "); detection data is for detectors");
  }
  data::DatasetRef ref = data::ParseDatasetRef(data);
  if (ref.kind.empty() && !ref.dir.empty()) ref.kind = data::kCoco;  // a bare folder
  if (data.empty()) {
    ref.kind = meta.dataset;
    if (meta.train_config.contains("data")) ref.dir = meta.train_config["data"].value("dir", "");
  }
  if (ref.kind.empty()) {
    return InvalidArgument("detector " + meta.model + " names no dataset: give --data coco:DIR or --data scenes:CONFIG");
  }
  SI_ASSIGN_OR_RETURN(auto dataset, data::OpenDetectionDataset(ref, split, meta.input_shape[1], meta.input_shape[0],
                                                               progress));
  SI_RETURN_IF_ERROR(CheckClassNames(meta, dataset->class_names(), ref.kind + ":" + ref.dir));
  return dataset;
}

Result<std::unique_ptr<data::Dataset>> OpenDatasetFor(const models::CheckpointMeta& meta, const std::string& data,
                                                      data::Split split) {
  if (meta.input_shape.size() != 3) return InvalidArgument("model " + meta.model + " has no [C, H, W] input shape");
  // Every classification command reads its images here, so this is where a detector is stopped.
  SI_RETURN_IF_ERROR(models::RequireClassifier(meta, "this command"));
  data::DatasetRef ref = data::ParseDatasetRef(data);
  if (ref.kind.empty()) ref.kind = meta.dataset;
  if (ref.dir.empty() && ref.kind == meta.dataset && meta.train_config.contains("data")) {
    ref.dir = meta.train_config["data"].value("dir", "");
  }
  if (ref.kind.empty()) {
    return InvalidArgument("model " + meta.model +
                           " names no dataset: give --data fmnist, --data imagefolder:DIR or --data tinyimagenet:DIR");
  }
  SI_ASSIGN_OR_RETURN(const data::ImageOptions images, ImagesFor(meta));
  SI_ASSIGN_OR_RETURN(auto dataset, data::OpenDataset(ref.kind, ref.dir, split, images));
  SI_RETURN_IF_ERROR(CheckDatasetFits(meta, *dataset));
  return dataset;
}

}  // namespace splitinfer::bottleneck
