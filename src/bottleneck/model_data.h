// The images for a model: one place that opens a dataset reference for a model and checks that
// the two fit, for every command that reads images (eval, train, the study and methods,
// profile, node, load, the low-bit head's calibration and evaluation).
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "data/dataset.h"
#include "data/datasets.h"
#include "data/detection.h"
#include "models/checkpoint.h"

namespace splitinfer::bottleneck {

// How folder images are read for the model: its H x W and channels, its resize policy.
Result<data::ImageOptions> ImagesFor(const models::CheckpointMeta& meta);

// Input shape (folder images are read at the model's H x W and channel count) and class names
// (the same names in the same order, unless the model's are only numbers 0..N-1: names unknown).
// MISMATCH naming the first difference.
Status CheckDatasetFits(const models::CheckpointMeta& meta, const data::Dataset& dataset);

// The class-name half of CheckDatasetFits, for any dataset's names (`dataset` names it in errors).
Status CheckClassNames(const models::CheckpointMeta& meta, const std::vector<std::string>& names,
                       const std::string& dataset);

// The split of a dataset for a model. `data`: a dataset reference (data::ParseDatasetRef:
// fmnist, imagefolder:DIR, tinyimagenet:DIR); empty or a bare directory takes the kind the
// model's metadata names (and, empty, the directory its training config names, else the
// dataset's default location). Checked with CheckDatasetFits.
Result<std::unique_ptr<data::Dataset>> OpenDatasetFor(const models::CheckpointMeta& meta, const std::string& data,
                                                      data::Split split);

// The split of a detection dataset for a detector (task detect): `data` is coco:DIR,
// scenes:CONFIG or a bare DIR (a COCO folder); empty takes the dataset the detector was trained
// on (its metadata and training config). Images are read at its input side and channels; the
// folder's categories must be its classes (MISMATCH naming the first that differs).
// INVALID_ARGUMENT for a classifier.
Result<std::unique_ptr<data::CocoDetectionDataset>> OpenDetectionDataFor(const models::CheckpointMeta& meta,
                                                                        const std::string& data, data::Split split,
                                                                        bool progress = true);

}  // namespace splitinfer::bottleneck
