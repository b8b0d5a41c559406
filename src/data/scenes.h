// data/scenes: a COCO-format detection dataset of scenes composed of real Fashion-MNIST items
// (`splitinfer data make-scenes`). No real detection dataset ships with Debian; these are
// synthetic layouts of real object images: each canvas has a textured, noisy background and 1-6
// items, each scaled, placed with limited overlap and blended in by its own brightness, with a
// tight box from the item's pixels. Train scenes take items only from the training images, test
// scenes only from the test images; every scene is a function of (seed, split, index), so the
// same parameters give the same files, byte for byte.
//
// The parameters are fixed in a committed file (configs/data/scenes.yaml) before anything is
// trained on them; the output folder records them (scenes.json) so that a reader can check that
// a folder is the one a model was trained on.
//
// Output (the layout `coco:DIR` reads):
//   DIR/train/000001.png ...            grayscale canvases
//   DIR/test/000001.png ...
//   DIR/annotations/instances_train.json, instances_test.json   (COCO: images, categories,
//                                        annotations with bbox, area = item pixels, iscrowd 0,
//                                        and "source": the Fashion-MNIST split and index)
//   DIR/scenes.json                      the parameters and counts
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace splitinfer::data {

struct SceneParams {
  int64_t canvas = 128;                  // square canvas side, pixels
  int64_t min_objects = 1, max_objects = 6;
  double min_scale = 0.7, max_scale = 2.5;  // item side over its 28 pixels
  double max_iou = 0.3;                  // between any two boxes of a scene
  int64_t placement_tries = 50;          // per item; an item that finds no place is left out
  double background_min = 20, background_max = 90;  // base grey level, uniform per scene
  double gradient = 40;                  // at most this much linear ramp across the canvas
  double texture = 14;                   // std of smooth noise (a blurred noise field)
  double texture_blur = 3;               // Gaussian sigma of that field, pixels
  double grain = 6;                      // std of per-pixel noise on top
  int64_t box_threshold = 16;            // item pixels above this (of 255) make its box and area
  int64_t train_scenes = 16000, test_scenes = 2000;
  uint64_t seed = 1;
  nlohmann::json ToJson() const;
};

// Reads a scenes YAML (keys as SceneParams; unknown keys and out-of-range values refused).
Result<SceneParams> LoadSceneParams(const std::string& path);

struct ScenesReport {
  int64_t train_scenes = 0, test_scenes = 0, train_objects = 0, test_objects = 0;
  int64_t dropped_objects = 0;  // items that found no place within max_iou
};

// Writes the dataset under `out_dir` (created; an existing non-empty folder is refused so that
// nothing is mixed). `fmnist_dir`: Debian's dataset-fashion-mnist files. UNIMPLEMENTED without
// OpenCV (it writes the PNGs). An empty `fmnist_dir` is Debian's.
Result<ScenesReport> MakeScenes(const SceneParams& params, const std::string& out_dir,
                                const std::string& fmnist_dir, bool progress = true);

// The dataset reference `scenes:CONFIG`: the folder the scenes of the parameters in CONFIG (a
// YAML as above) are in, made on first use. Kept in the cache folder (SPLITINFER_CACHE, else
// $XDG_CACHE_HOME/splitinfer, else ~/.cache/splitinfer) under a name from the parameters'
// checksum, written to a temporary folder and renamed so that an interrupted run leaves nothing
// half-made; a cached folder whose scenes.json holds other parameters is not used.
Result<std::string> EnsureScenes(const std::string& config_path, bool progress = true);

}  // namespace splitinfer::data
