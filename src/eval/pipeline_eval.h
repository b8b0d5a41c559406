// Evaluation of a whole pipeline on the wire path: every test image goes through the node's
// head and encoder, becomes a real frame (quantize, pack, lossless, header, CRC), is decoded
// from those bytes and finishes on the server. Accuracy and bytes per image are therefore what
// a deployment would see, header included; nothing is estimated.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "bottleneck/model_data.h"
#include "bottleneck/pipeline.h"
#include "codec/lossless/cabac.h"
#include "core/status.h"
#include "data/dataset.h"
#include "data/detection.h"
#include "eval/detection/coco_eval.h"
#include "models/checkpoint.h"

namespace splitinfer::eval {

struct PipelineEvalOptions {
  int64_t batch_size = 500;
  int64_t limit = 0;  // 0 = the whole dataset
  torch::Device device = torch::kCPU;
  bool progress = false;
  // Also measure the frame size with these coders (lossless, so accuracy is the same); the
  // pipeline's own coder is always measured and is the one whose frames are decoded.
  std::vector<std::string> extra_coders;
};

struct CoderBytes {
  std::string coder;
  double bytes_per_image = 0;  // mean frame size, header included
  double header_bytes = 0;     // mean frame size minus payload
};

struct PipelineEvalResult {
  double top1 = 0;  // percent (classifiers; -1 for a detector)
  std::optional<CocoMetrics> detection;  // a detector's COCO metrics over its frames
  int64_t images = 0;
  double seconds = 0;
  double order0_bytes = 0;         // mean order-0 entropy of the symbols, in bytes
  std::vector<CoderBytes> coders;  // [0] is the pipeline's coder
  std::vector<int64_t> wire_shape;  // per-image shape of what is quantized
};

Result<PipelineEvalResult> EvaluatePipeline(bottleneck::Pipeline& pipeline, const data::Dataset& dataset,
                                            const PipelineEvalOptions& options);

// The same wire path for a detector's pipeline: COCO's metrics of the server's boxes
// (eval/detection/detector.h) with the frames' bytes. INVALID_ARGUMENT for a classifier's.
Result<PipelineEvalResult> EvaluateDetectorPipeline(bottleneck::Pipeline& pipeline,
                                                    const data::CocoDetectionDataset& dataset,
                                                    const PipelineEvalOptions& options);



// The context model of the cabac-trained coder for this pipeline's symbol maps: the node's
// features of the first `images` examples of `train` (training images: the test set stays
// unseen), quantized with the pipeline's quantizer, then codec::TrainCabacModel.
Result<codec::CabacModel> TrainPipelineCabacModel(bottleneck::Pipeline& pipeline, const data::Dataset& train,
                                                  int64_t images, int64_t batch_size = 500);

}  // namespace splitinfer::eval
