#include "tools/cli/lowbit_cmd.h"

#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "eval/lowbit.h"
#include "tools/cli/model_args.h"
#include "train/head_qat.h"

namespace splitinfer::cli {

namespace {

struct Args {
  eval::QuantizeHeadOptions q;
  train::HeadFinetuneOptions ft;
  bool keep_first_float = false;
  std::string act_ranges = "region";
  std::string kernel_path = "auto";
  eval::HeadEvalOptions e;
  std::string eval_impl = "int8";
  eval::HeadBenchOptions b;
  bool json = false;
  ModelArgs qmodel, emodel, bmodel;
  std::shared_ptr<int64_t> epochs_done;  // fine-tuning epochs done, when --finetune runs
  Args() { ft.epochs = 0; }  // fine-tuning only when asked (--finetune N)
};

}  // namespace

std::function<Status()> AddLowbitCommands(CLI::App& app, std::function<bool()>* selected) {
  auto a = std::make_shared<Args>();
  auto* qh = app.add_subcommand("quantize-head", "convert a trained head to low-bit weights and activations (a head file)");
  AddModelOptions(qh, a->qmodel);
  qh->add_option("--data", a->q.data, "calibration images: fmnist, imagefolder:DIR, ... (default: the model's)");
  qh->add_option("--split", a->q.split, "the split point the head ends at")->required();
  qh->add_option("--wbits", a->q.quant.wbits, "weight bits: 1, 2, 4 or 8");
  qh->add_option("--abits", a->q.quant.abits, "activation bits: 1..8");
  qh->add_option("--first-wbits", a->q.quant.first_wbits, "weight bits of the first convolution (default: --wbits)");
  qh->add_option("--group", a->q.quant.group_size, "input channels per local region (0 = per output channel)");
  qh->add_option("--calibration", a->q.calibration_images, "training images to calibrate activation ranges on");
  qh->add_option("--percentile", a->q.quant.percentile, "activation range top as a percentile (100 = max)");
  qh->add_option("--act-ranges", a->act_ranges, "activation ranges per local region (region, default) or per tensor")
      ->check(CLI::IsMember({"region", "tensor"}));
  qh->add_flag("--keep-first-float", a->keep_first_float, "leave the first convolution (raw image in) in float");
  qh->add_option("--out", a->q.out, "head file to write")->required();
  qh->add_option("--finetune", a->ft.epochs, "fine-tune the head through fake quantization for N epochs first (0 = no)");
  qh->add_option("--lr", a->ft.lr, "with --finetune: AdamW learning rate (default 1e-4)");
  qh->add_option("--limit-train", a->ft.limit_train, "with --finetune: training images (0 = all)");
  qh->add_option("--stop-after", a->ft.stop_after_epochs,
                 "with --finetune: stop (resumably) after this many epochs in this run; the same command resumes");
  qh->add_flag("--json", a->json, "print one JSON object");

  auto* eh = app.add_subcommand("eval-head", "accuracy of a head file on the test set (alone or in a pipeline)");
  eh->add_option("--head", a->e.head_file, "head file from quantize-head")->required();
  AddModelOptions(eh, a->emodel);  // the model the head came from
  eh->add_option("--data", a->e.data, "test images: fmnist, imagefolder:DIR, ... (default: the model's)");
  eh->add_option("--pipeline", a->e.pipeline, "pipeline YAML: its encoder, codec and server side after the head");
  eh->add_option("--impl", a->eval_impl, "int8 | lut | reference | auto (all give the same result)");
  eh->add_option("--limit", a->e.limit, "test images (0 = all)");
  eh->add_flag("--json", a->json, "print one JSON object");

  auto* bench = app.add_subcommand("bench", "benchmarks");
  bench->require_subcommand(1);
  auto* bh = bench->add_subcommand("head", "time a head at batch 1: LibTorch float against the low-bit kernels");
  AddModelOptions(bh, a->bmodel);
  bh->add_option("--data", a->b.data, "the timed image: fmnist, imagefolder:DIR, ... (default: the model's)");
  bh->add_option("--split", a->b.split, "the split point the head ends at")->required();
  bh->add_option("--impl", a->b.impl, "torch | int8 | lut | reference | auto (int8 or lut per conv, timed)");
  bh->add_option("--quantized", a->b.quantized, "head file (for int8, lut, reference)");
  bh->add_option("--input", a->b.input, "CxHxW, e.g. 1x28x28 or 3x224x224 (must be the model's input)");
  bh->add_option("--kernel-path", a->kernel_path, "the kernels' SIMD path: auto, portable, avx2, avx512, neon, neondot")
      ->check(CLI::IsMember({"auto", "portable", "avx2", "avx512", "neon", "neondot"}));
  bh->add_option("--threads", a->b.threads, "threads (LibTorch, and the direct int8 kernel's larger convolutions; the other kernel paths use one)")->check(CLI::Range(1, 1024));
  bh->add_option("--runs", a->b.runs, "timed runs (median, p95)")->check(CLI::Range(1, 1000000));
  bh->add_flag("--json", a->json, "print one JSON object");

  *selected = [qh, eh, bh] { return qh->parsed() || eh->parsed() || bh->parsed(); };
  return [qh, eh, bh, a]() -> Status {
    if (qh->parsed()) {
      a->q.checkpoint = a->qmodel.ref;
      SI_ASSIGN_OR_RETURN(a->q.model_flags, MetaFlags(a->qmodel));
      a->q.quant.quantize_first = !a->keep_first_float;
      a->q.quant.region_activations = a->act_ranges == "region";
      if (a->ft.epochs > 0) {
        a->ft.checkpoint = a->q.checkpoint;
        a->ft.quant = a->q.quant;
        a->ft.state_path = a->q.out + ".state.pt";
        a->ft.progress = !a->json;
        auto ft = a->ft;
        auto done = std::make_shared<int64_t>(0);
        a->q.finetune = [ft, done](kernels::HeadGraph& g) -> Result<bool> {
          SI_ASSIGN_OR_RETURN(*done, train::FinetuneHead(g, ft));
          return *done == ft.epochs;
        };
        a->epochs_done = done;
      }
      SI_ASSIGN_OR_RETURN(auto r, eval::QuantizeHead(a->q));
      if (r.stopped && !a->json) {
        std::printf("fine-tuning stopped after epoch %lld of %lld (--stop-after); %s holds the progress: run the "
                    "same command again to resume\n",
                    static_cast<long long>(*a->epochs_done), static_cast<long long>(a->ft.epochs),
                    a->ft.state_path.c_str());
        return Status::Ok();
      }
      if (a->json) {
        std::printf("%s\n", r.ToJson().dump().c_str());
      } else {
        std::string regions = a->q.quant.group_size > 0
                                  ? "regions of " + std::to_string(a->q.quant.group_size) + " input channels"
                                  : "one region per output channel";
        regions += a->q.quant.region_activations ? ", activation ranges per region" : ", activation ranges per tensor";
        std::printf("%s up to %s: %lld convolutions at w%d a%d (%s), %lld bytes of weights -> %s "
                    "(float graph matches LibTorch within %.1e)\n",
                    r.model.c_str(), r.split.c_str(), static_cast<long long>(r.convs), a->q.quant.wbits,
                    a->q.quant.abits, regions.c_str(), static_cast<long long>(r.weight_bytes), r.out.c_str(),
                    r.float_graph_error);
      }
      return Status::Ok();
    }
    if (eh->parsed()) {
      a->e.checkpoint = a->emodel.ref;
      SI_ASSIGN_OR_RETURN(a->e.model_flags, MetaFlags(a->emodel));
      SI_ASSIGN_OR_RETURN(a->e.impl, kernels::ParseHeadImpl(a->eval_impl));
      a->e.progress = !a->json;
      SI_ASSIGN_OR_RETURN(auto r, eval::EvaluateHead(a->e));
      if (a->json) {
        std::printf("%s\n", r.ToJson().dump().c_str());
      } else {
        std::printf("%s up to %s, w%d a%d, %lld images%s: float head %.2f %%, low-bit head %.2f %% (%+.2f pp)\n",
                    r.model.c_str(), r.split.c_str(), r.wbits, r.abits, static_cast<long long>(r.images),
                    r.pipeline.empty() ? "" : (", pipeline " + r.pipeline).c_str(), r.top1_float, r.top1_lowbit,
                    r.top1_lowbit - r.top1_float);
      }
      return Status::Ok();
    }
    if (bh->parsed()) {
      a->b.checkpoint = a->bmodel.ref;
      SI_ASSIGN_OR_RETURN(a->b.model_flags, MetaFlags(a->bmodel));
      const std::string& kp = a->kernel_path;
      a->b.path = kp == "portable" ? kernels::KernelPath::kPortable
                  : kp == "avx2"   ? kernels::KernelPath::kAvx2
                  : kp == "avx512" ? kernels::KernelPath::kAvx512Vnni
                  : kp == "neon"   ? kernels::KernelPath::kNeon
                  : kp == "neondot" ? kernels::KernelPath::kNeonDot
                                   : kernels::KernelPath::kAuto;
      SI_ASSIGN_OR_RETURN(auto r, eval::BenchHead(a->b));
      if (a->json) {
        std::printf("%s\n", r.ToJson().dump().c_str());
      } else {
        std::printf("%s\n%s%s %s up to %s (%s): median %.3f ms, p95 %.3f ms over %d runs\n", r.compute.c_str(),
                    r.impl.c_str(), r.kernel_path.empty() ? "" : (" (" + r.kernel_path + ")").c_str(),
                    r.model.c_str(), r.split.c_str(), r.input.c_str(), r.median_ms, r.p95_ms, r.runs);
      }
      return Status::Ok();
    }
    return Status::Ok();
  };
}

}  // namespace splitinfer::cli
