#include "kernels/head.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <thread>
#include <tuple>

#include "conv_test_util.h"
#include "test_seed.h"

namespace splitinfer::kernels {
namespace {

using ::splitinfer::testing::TestSeed;

Tensor3 RandomTensor(int c, int h, int w, std::mt19937& rng, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> u(lo, hi);
  Tensor3 t{c, h, w, {}};
  t.data.resize(static_cast<size_t>(c) * h * w);
  for (float& v : t.data) v = u(rng);
  return t;
}

HeadOp Conv(const std::string& name, int input, int cin, int h, int w, int cout, int k, int stride, bool relu,
            std::mt19937& rng, int residual = -1) {
  HeadOp op;
  op.kind = HeadOpKind::kConv;
  op.name = name;
  op.input = input;
  op.residual = residual;
  op.relu = relu;
  op.shape = {cin, h, w, cout, k, k, stride, k / 2, cin};
  std::normal_distribution<float> n(0.f, 1.f / std::sqrt(static_cast<float>(cin * k * k)));
  op.weight.resize(op.shape.weight_size());
  for (float& v : op.weight) v = n(rng);
  op.bias.resize(static_cast<size_t>(cout));
  for (float& v : op.bias) v = 0.1f * n(rng);
  return op;
}

HeadOp MaxPool(int input, int kernel, int stride, int padding) {
  HeadOp pool;
  pool.kind = HeadOpKind::kMaxPool;
  pool.input = input;
  pool.pool_kernel = kernel;
  pool.pool_stride = stride;
  pool.pool_padding = padding;
  return pool;
}

// A ResNet-like head: stem conv (stride 2) + ReLU, max-pool, a basic block with an identity
// shortcut, a basic block with a strided 1x1 shortcut. 3x20x20 in, 16x3x3 out.
HeadGraph TinyResNet(std::mt19937& rng) {
  HeadGraph g;
  g.model = "tiny";
  g.split = "block2";
  g.in_channels = 3;
  g.in_height = g.in_width = 20;
  g.ops.push_back(Conv("stem", 0, 3, 20, 20, 8, 3, 2, true, rng));     // r1: 8x10x10
  g.ops.push_back(MaxPool(1, 3, 2, 1));                                 // r2: 8x5x5
  g.ops.push_back(Conv("b1.conv1", 2, 8, 5, 5, 8, 3, 1, true, rng));    // r3
  g.ops.push_back(Conv("b1.conv2", 3, 8, 5, 5, 8, 3, 1, true, rng, /*residual=*/2));  // r4
  g.ops.push_back(Conv("b2.conv1", 4, 8, 5, 5, 16, 3, 2, true, rng));   // r5: 16x3x3
  g.ops.push_back(Conv("b2.short", 4, 8, 5, 5, 16, 1, 2, false, rng));  // r6: 16x3x3
  g.ops.push_back(Conv("b2.conv2", 5, 16, 3, 3, 16, 3, 1, true, rng, /*residual=*/6));  // r7
  return g;
}

std::vector<Tensor3> Images(int n, std::mt19937& rng) {
  std::vector<Tensor3> v;
  for (int i = 0; i < n; ++i) v.push_back(RandomTensor(3, 20, 20, rng));
  return v;
}

TEST(HeadTest, FloatGraphShapesAndHandComputedConv) {
  // One 1x1 conv with weight 2 and bias 1, ReLU, on [-1, 0.5]: [0, 2].
  HeadGraph g;
  g.model = "one";
  g.in_channels = 1;
  g.in_height = 1;
  g.in_width = 2;
  HeadOp op;
  op.shape = {1, 1, 2, 1, 1, 1, 1, 0, 1};
  op.weight = {2.f};
  op.bias = {1.f};
  op.relu = true;
  g.ops.push_back(op);
  auto y = RunFloat(g, {1, 1, 2, {-1.f, 0.5f}});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->data, (std::vector<float>{0.f, 2.f}));

  std::mt19937 rng(TestSeed());
  const HeadGraph tiny = TinyResNet(rng);
  auto shape = tiny.ShapeOf(static_cast<int>(tiny.ops.size()));
  ASSERT_TRUE(shape.ok()) << shape.status().ToString();
  EXPECT_EQ(shape->c, 16);
  EXPECT_EQ(shape->h, 3);
  EXPECT_EQ(shape->w, 3);
}

// Every implementation gives the same floats bit for bit, at every width pair the LUT takes
// and at 8 bits; and 8 bits stays close to float.
TEST(HeadTest, ImplementationsAgreeBitForBit) {
  std::mt19937 rng(TestSeed());
  const HeadGraph base = TinyResNet(rng);
  const auto calib = Images(8, rng);
  const Tensor3 x = RandomTensor(3, 20, 20, rng);
  auto ref_float = RunFloat(base, x);
  ASSERT_TRUE(ref_float.ok());
  struct Case {
    int wbits, abits, group;
  };
  for (const Case c : {Case{8, 8, 0}, Case{8, 8, 4}, Case{4, 4, 4}, Case{2, 4, 2}, Case{2, 2, 8}, Case{1, 4, 4},
                       Case{4, 8, 0}}) {
    SCOPED_TRACE("w" + std::to_string(c.wbits) + "a" + std::to_string(c.abits) + " g" + std::to_string(c.group));
    HeadGraph g = base;
    QuantizeOptions o;
    o.wbits = c.wbits;
    o.abits = c.abits;
    o.group_size = c.group;
    ASSERT_TRUE(QuantizeGraph(g, calib, o).ok());
    auto head = QuantizedHead::Prepare(g);
    ASSERT_TRUE(head.ok()) << head.status().ToString();
    auto ref = head->Run(x, HeadImpl::kReference);
    auto int8 = head->Run(x, HeadImpl::kInt8);
    auto lut = head->Run(x, HeadImpl::kLut);
    ASSERT_TRUE(ref.ok() && int8.ok() && lut.ok());
    ASSERT_EQ(ref->data.size(), ref_float->data.size());
    EXPECT_EQ(0, std::memcmp(ref->data.data(), int8->data.data(), ref->data.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(ref->data.data(), lut->data.data(), ref->data.size() * sizeof(float)));
    // auto, tuned: one timing per conv the LUT can run, and still the same bits.
    ASSERT_TRUE(head->Tune(1).ok());
    size_t convs = 0;
    for (const HeadOp& op : g.ops) convs += op.kind == HeadOpKind::kConv;
    const size_t lut_convs = c.wbits <= 4 && c.abits <= 4 ? convs : 0;
    EXPECT_EQ(head->timings().size(), lut_convs);
    for (const ConvTiming& t : head->timings()) EXPECT_TRUE(t.int8_ms > 0 && t.lut_ms > 0) << t.name;
    auto tuned = head->Run(x, HeadImpl::kAuto);
    ASSERT_TRUE(tuned.ok());
    EXPECT_EQ(0, std::memcmp(ref->data.data(), tuned->data.data(), ref->data.size() * sizeof(float)));
    if (c.wbits == 8 && c.abits == 8) {
      // On a calibration image (an input outside the calibrated ranges is clipped, which can
      // cost more than 8 bits do: some seeds gave 8 % on a fresh random image).
      auto q = head->Run(calib[0], HeadImpl::kReference);
      auto f = RunFloat(base, calib[0]);
      ASSERT_TRUE(q.ok() && f.ok());
      double err = 0, norm = 0;
      for (size_t k = 0; k < q->data.size(); ++k) {
        err += std::pow(q->data[k] - f->data[k], 2);
        norm += std::pow(f->data[k], 2);
      }
      EXPECT_LT(std::sqrt(err / norm), 0.05) << "8-bit head strays from float";
    }
  }
}

// Every kernel path this CPU has gives the head the same floats.
TEST(HeadTest, KernelPathsAgreeBitForBit) {
  std::mt19937 rng(TestSeed());
  HeadGraph g = TinyResNet(rng);
  QuantizeOptions o;
  o.group_size = 4;
  ASSERT_TRUE(QuantizeGraph(g, Images(4, rng), o).ok());
  const Tensor3 x = RandomTensor(3, 20, 20, rng);
  auto want = QuantizedHead::Prepare(g, KernelPath::kPortable)->Run(x, HeadImpl::kInt8);
  ASSERT_TRUE(want.ok());
  auto paths = test_util::AllKernelPaths();
  paths.push_back(KernelPath::kAuto);
  for (KernelPath path : paths) {
    SCOPED_TRACE(KernelPathName(path));
    if (!test_util::CpuHas(path)) {
      EXPECT_EQ(QuantizedHead::Prepare(g, path).status().code(), ErrorCode::kFailedPrecondition);
      continue;
    }
    auto head = QuantizedHead::Prepare(g, path);
    ASSERT_TRUE(head.ok()) << head.status().ToString();
    auto got = head->Run(x, HeadImpl::kInt8);
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(got->data.size(), want->data.size());
    EXPECT_EQ(0, std::memcmp(got->data.data(), want->data.data(), want->data.size() * sizeof(float)));
  }
}

// A wider head for the VNNI path's direct NHWC kernel (direct.h): a 7x7/2 stem with padding 3
// on 3 channels (padded to 4 per region), a max-pool, stride-1 and stride-2 convs with 20, 32
// and 70 output channels (inputs of 20 and 70 channels take the per-pixel quantization, of 32
// the whole-row one), a 1x1 strided shortcut, residuals, and maps of 18x18 and 9x9 (pixel
// counts that leave tails in every tile and transpose).
HeadGraph WideResNet(std::mt19937& rng) {
  HeadGraph g;
  g.model = "wide";
  g.split = "b2";
  g.in_channels = 3;
  g.in_height = g.in_width = 70;
  g.ops.push_back(Conv("stem", 0, 3, 70, 70, 20, 7, 2, true, rng));       // r1: 20x35x35
  g.ops.push_back(MaxPool(1, 3, 2, 1));                                   // r2: 20x18x18
  g.ops.push_back(Conv("b1.conv1", 2, 20, 18, 18, 32, 3, 1, true, rng));  // r3: 32x18x18
  g.ops.push_back(Conv("b1.conv2", 3, 32, 18, 18, 32, 3, 1, true, rng, /*residual=*/3));  // r4
  g.ops.push_back(Conv("b2.conv1", 4, 32, 18, 18, 70, 3, 2, true, rng));  // r5: 70x9x9
  g.ops.push_back(Conv("b2.short", 4, 32, 18, 18, 70, 1, 2, false, rng)); // r6: 70x9x9
  g.ops.push_back(Conv("b2.conv2", 5, 70, 9, 9, 70, 3, 1, true, rng, /*residual=*/6));  // r7
  return g;
}

// A grayscale head as the Fashion-MNIST model's: one input channel, so the direct path packs
// quads along kernel rows (3 bytes of a 3x3 kernel's row in one quad).
HeadGraph GrayHead(std::mt19937& rng) {
  HeadGraph g;
  g.model = "gray";
  g.split = "b1";
  g.in_channels = 1;
  g.in_height = 23;
  g.in_width = 21;
  g.ops.push_back(Conv("stem", 0, 1, 23, 21, 16, 3, 2, true, rng));               // r1: 16x12x11
  g.ops.push_back(Conv("b1.conv1", 1, 16, 12, 11, 16, 3, 1, true, rng));          // r2
  g.ops.push_back(Conv("b1.conv2", 2, 16, 12, 11, 16, 3, 1, true, rng, /*residual=*/1));  // r3
  return g;
}

// The direct NHWC path equals the reference bit for bit: regions of 4, 5 (padded to 8 per
// region, where they divide the channels), 10 and whole tensors, activation ranges per region and per tensor, 8-bit and
// LUT-coded weights (run on the int8 kernel); and on a CPU without VNNI the paths still agree.
TEST(HeadTest, DirectNhwcPathAgreesBitForBit) {
  std::mt19937 rng(TestSeed());
  for (const bool gray : {false, true}) {
  SCOPED_TRACE(gray ? "grayscale head" : "RGB head");
  const HeadGraph base = gray ? GrayHead(rng) : WideResNet(rng);
  const int ic = base.in_channels, ih = base.in_height, iw = base.in_width;
  std::vector<Tensor3> calib;
  for (int i = 0; i < 3; ++i) calib.push_back(RandomTensor(ic, ih, iw, rng));
  const Tensor3 x = RandomTensor(ic, ih, iw, rng);
  struct Case {
    int wbits, abits, group;
    bool region_activations;
  };
  for (const Case c : {Case{8, 8, 0, true}, Case{8, 8, 4, true}, Case{8, 8, 5, true}, Case{8, 8, 10, false},
                       Case{8, 6, 5, false}, Case{2, 4, 4, true}}) {
    SCOPED_TRACE("w" + std::to_string(c.wbits) + "a" + std::to_string(c.abits) + " g" + std::to_string(c.group) +
                 (c.region_activations ? " region ranges" : " tensor ranges"));
    HeadGraph g = base;
    QuantizeOptions o;
    o.wbits = c.wbits;
    o.abits = c.abits;
    o.group_size = c.group;
    o.region_activations = c.region_activations;
    ASSERT_TRUE(QuantizeGraph(g, calib, o).ok());
    auto head = QuantizedHead::Prepare(g);
    ASSERT_TRUE(head.ok()) << head.status().ToString();
    EXPECT_EQ(head->direct(), CpuHasAvx512Vnni());
    auto ref = head->Run(x, HeadImpl::kReference);
    auto int8 = head->Run(x, HeadImpl::kInt8);
    ASSERT_TRUE(ref.ok() && int8.ok());
    ASSERT_EQ(int8->c, gray ? 16 : 70);
    ASSERT_EQ(int8->h, gray ? 12 : 9);
    ASSERT_EQ(ref->data.size(), int8->data.size());
    EXPECT_EQ(0, std::memcmp(ref->data.data(), int8->data.data(), ref->data.size() * sizeof(float)));
    // Twice more on the same thread-local buffers, on other inputs.
    for (int k = 0; k < 2; ++k) {
      const Tensor3 y = RandomTensor(ic, ih, iw, rng, -2.f, 2.f);
      auto a = head->Run(y, HeadImpl::kReference), b = head->Run(y, HeadImpl::kInt8);
      ASSERT_TRUE(a.ok() && b.ok());
      EXPECT_EQ(0, std::memcmp(a->data.data(), b->data.data(), a->data.size() * sizeof(float)));
    }
  }
  }
}

// The pool runs every task of a loop exactly once, loop after loop (a worker that wakes late
// must not run a task of the next loop with the last one's function), and two callers sharing
// one pool each get their own loop.
TEST(ThreadPoolTest, EveryTaskRunsOnceInEveryLoop) {
  ThreadPool pool(3);
  EXPECT_EQ(pool.threads(), 3);
  auto loops = [&pool](int n, int tasks) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(tasks));
    for (int loop = 0; loop < n; ++loop) {
      pool.ParallelFor(tasks, [&](int t) { hits[static_cast<size_t>(t)].fetch_add(1, std::memory_order_relaxed); });
    }
    int wrong = 0;
    for (auto& h : hits) wrong += h.load() != n;
    return wrong;
  };
  EXPECT_EQ(loops(500, 7), 0);
  EXPECT_EQ(loops(50, 1000), 0);
  int other = -1;
  std::thread second([&] { other = loops(300, 5); });
  EXPECT_EQ(loops(300, 9), 0);
  second.join();
  EXPECT_EQ(other, 0);
  ThreadPool alone(1);  // no workers: the caller runs every task
  int sum = 0;
  alone.ParallelFor(4, [&](int t) { sum += t; });
  EXPECT_EQ(sum, 6);
}

// Convolutions large enough to be split among threads (a few million multiply-adds: RGB 64x64
// in, as a small ResNet stem; 130 output channels, so the last 64-channel block has 2), on 3
// threads, equal one thread's bit for bit, image after image.
TEST(HeadTest, DirectPathOnSeveralThreadsAgreesBitForBit) {
  std::mt19937 rng(TestSeed());
  HeadGraph g;
  g.model = "threads";
  g.split = "b1";
  g.in_channels = 3;
  g.in_height = g.in_width = 64;
  g.ops.push_back(Conv("stem", 0, 3, 64, 64, 64, 7, 2, true, rng));                     // r1: 64x32x32
  g.ops.push_back(MaxPool(1, 3, 2, 1));                                                 // r2: 64x16x16
  g.ops.push_back(Conv("b1.conv1", 2, 64, 16, 16, 64, 3, 1, true, rng));                // r3
  g.ops.push_back(Conv("b1.conv2", 3, 64, 16, 16, 64, 3, 1, true, rng, /*residual=*/2));  // r4
  g.ops.push_back(Conv("b2.conv1", 4, 64, 16, 16, 130, 3, 1, true, rng));               // r5: 130x16x16
  std::vector<Tensor3> calib;
  for (int i = 0; i < 2; ++i) calib.push_back(RandomTensor(3, 64, 64, rng));
  QuantizeOptions o;
  o.wbits = 8;
  o.abits = 8;
  ASSERT_TRUE(QuantizeGraph(g, calib, o).ok());
  auto one = QuantizedHead::Prepare(g);
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(one->SetThreads(0).code(), ErrorCode::kInvalidArgument);
  QuantizedHead three = *one;
  ASSERT_TRUE(three.SetThreads(3).ok());
  EXPECT_EQ(three.threads(), 3);
  EXPECT_EQ(one->threads(), 1);
  if (!one->direct()) GTEST_SKIP() << "no AVX-512 VNNI: the direct kernel (the threaded path) does not run here";
  for (int k = 0; k < 3; ++k) {
    const Tensor3 x = RandomTensor(3, 64, 64, rng, -2.f, 2.f);
    auto a = one->Run(x, HeadImpl::kInt8), b = three.Run(x, HeadImpl::kInt8);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(a->data.size(), 130u * 16 * 16);
    EXPECT_EQ(0, std::memcmp(a->data.data(), b->data.data(), a->data.size() * sizeof(float))) << "image " << k;
    if (k == 0) {
      auto ref = one->Run(x, HeadImpl::kReference);
      ASSERT_TRUE(ref.ok());
      EXPECT_EQ(0, std::memcmp(ref->data.data(), b->data.data(), ref->data.size() * sizeof(float)));
    }
  }
}

// The direct path's layout helpers against plain loops: the transpose back to [C][H][W] (16 x 16
// register blocks with channel and pixel tails) and the NHWC max-pool (against MaxPool2d).
TEST(HeadTest, DirectLayoutHelpersMatchPlainLoops) {
  std::mt19937 rng(TestSeed());
  for (const int c : {1, 5, 16, 17, 40, 64}) {
    for (const int hw : {1, 3, 4, 9, 17}) {
      SCOPED_TRACE("c " + std::to_string(c) + ", " + std::to_string(hw) + "x" + std::to_string(hw + 2));
      const int h = hw, w = hw + 2;
      const Tensor3 x = RandomTensor(c, h, w, rng, -5.f, 5.f);  // [C][H][W]
      const size_t plane = static_cast<size_t>(h) * w;
      std::vector<float> nhwc(x.data.size());
      for (int k = 0; k < c; ++k)
        for (size_t p = 0; p < plane; ++p) nhwc[p * c + k] = x.data[k * plane + p];
      std::vector<float> back(x.data.size(), -1.f);
      NhwcToNchw(nhwc.data(), c, h, w, back.data());
      EXPECT_EQ(back, x.data);
      for (const auto& [kernel, stride, padding] : {std::tuple{3, 2, 1}, std::tuple{2, 2, 0}, std::tuple{3, 1, 1}}) {
        if (h + 2 * padding < kernel || w + 2 * padding < kernel) continue;
        const Tensor3 want = MaxPool2d(x, kernel, stride, padding);
        std::vector<float> got;
        MaxPoolNhwc(nhwc.data(), c, h, w, kernel, stride, padding, &got);
        ASSERT_EQ(got.size(), want.data.size());
        std::vector<float> got_nchw(got.size());
        NhwcToNchw(got.data(), c, want.h, want.w, got_nchw.data());
        EXPECT_EQ(got_nchw, want.data) << "max-pool " << kernel << "/" << stride << " pad " << padding;
      }
    }
  }
}

// The vectorised activation quantization against the formula, written out, on values that hit
// every corner: exact halves (round to even), both clamps, huge magnitudes, signed zeros, and
// lengths that leave a scalar tail.
TEST(HeadTest, QuantizeActivationsMatchesTheFormula) {
  std::mt19937 rng(TestSeed());
  std::uniform_real_distribution<float> u(-3.f, 3.f);
  for (int abits = 1; abits <= 8; ++abits)
    for (const float scale : {1.f, 0.5f, 0.0123f, 3.7f}) {
      const int32_t top = (1 << abits) - 1;
      const int32_t zp = static_cast<int32_t>(rng() % static_cast<uint32_t>(top + 1));
      std::vector<float> x;
      for (int i = -40; i <= 40; ++i) x.push_back(static_cast<float>(i) * 0.5f * scale);  // halves
      for (float v : {0.f, -0.f, 1e30f, -1e30f, 3e38f, -3e38f, 1e-30f, -1e-30f}) x.push_back(v);
      for (int i = 0; i < 17; ++i) {  // NaN and infinities, in the vector body and the tail
        x.push_back(std::numeric_limits<float>::quiet_NaN());
        x.push_back(i % 2 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity());
      }
      for (int i = 0; i < 300; ++i) x.push_back(u(rng) * scale * static_cast<float>(top));
      for (size_t n : {x.size(), size_t{15}, size_t{16}, size_t{17}, size_t{1}}) {
        SCOPED_TRACE("abits " + std::to_string(abits) + " scale " + std::to_string(scale) + " n " + std::to_string(n));
        std::vector<uint8_t> got(n, 0xAA);
        QuantizeActivations(x.data(), n, scale, zp, abits, got.data());
        const float inv = 1.f / scale;
        for (size_t k = 0; k < n; ++k) {
          const float v = std::nearbyint(x[k] * inv) + static_cast<float>(zp);
          // NaN -> 0 (documented; a plain cast of NaN would be undefined).
          const auto want =
              std::isnan(v) ? uint8_t{0} : static_cast<uint8_t>(std::min(std::max(v, 0.f), static_cast<float>(top)));
          ASSERT_EQ(+got[k], +want) << "x = " << x[k];
        }
      }
    }
}

TEST(HeadTest, QuantizationUsesLocalRegionsAndCalibratedRanges) {
  std::mt19937 rng(TestSeed());
  HeadGraph g = TinyResNet(rng);
  // A region with large weights must not coarsen its neighbour's scale.
  g.ops[2].weight[0] = 50.f;
  QuantizeOptions o;
  o.wbits = 8;
  o.abits = 8;
  o.group_size = 4;
  ASSERT_TRUE(QuantizeGraph(g, Images(4, rng), o).ok());
  const HeadOp& op = g.ops[2];
  ASSERT_EQ(op.shape.regions(), 2);
  EXPECT_FLOAT_EQ(op.quant.weight_scales[0], 50.f / 127.f);
  EXPECT_LT(op.quant.weight_scales[1], 1.f / 127.f * 4);
  // After a ReLU the input range starts at 0: zero point 0.
  EXPECT_EQ(op.quant.input_zero_point, 0);
  // The stem sees the raw image in [-1, 1]: zero point near the middle.
  EXPECT_NEAR(g.ops[0].quant.input_zero_point, 128, 4);
  // group_size that does not divide C_in falls back to one region per output channel.
  HeadGraph h = TinyResNet(rng);
  o.group_size = 3;
  ASSERT_TRUE(QuantizeGraph(h, Images(2, rng), o).ok());
  EXPECT_EQ(h.ops[2].shape.group_size, 8);
  // The first conv may keep more weight bits than the rest.
  HeadGraph f = TinyResNet(rng);
  o.wbits = 2;
  o.first_wbits = 8;
  o.group_size = 4;
  ASSERT_TRUE(QuantizeGraph(f, Images(2, rng), o).ok());
  EXPECT_EQ(f.ops[0].quant.wbits, 8);
  EXPECT_EQ(f.ops[2].quant.wbits, 2);
  ASSERT_TRUE(QuantizedHead::Prepare(f).ok());
  o.first_wbits = 0;
  o.wbits = 3;
  EXPECT_EQ(QuantizeGraph(h, Images(1, rng), o).code(), ErrorCode::kInvalidArgument);
  o.wbits = 8;
  EXPECT_EQ(QuantizeGraph(h, {}, o).code(), ErrorCode::kInvalidArgument);
}

// Activation ranges per local region: each region's range comes from its own channels, so
// with the maximum as the top (percentile 100) the per-tensor scale is the largest of them;
// per tensor (region_activations off) leaves one range.
TEST(HeadTest, ActivationRangesPerRegion) {
  std::mt19937 rng(TestSeed());
  const HeadGraph base = TinyResNet(rng);
  const auto calib = Images(4, rng);
  QuantizeOptions o;
  o.abits = 4;
  o.group_size = 2;
  HeadGraph region = base, tensor = base;
  ASSERT_TRUE(QuantizeGraph(region, calib, o).ok());
  o.region_activations = false;
  ASSERT_TRUE(QuantizeGraph(tensor, calib, o).ok());
  // op 2 reads the pooled stem: 8 channels, 4 regions of 2.
  const ConvQuant& r = region.ops[2].quant;
  const ConvQuant& t = tensor.ops[2].quant;
  ASSERT_EQ(region.ops[2].shape.regions(), 4);
  ASSERT_EQ(r.input_scales.size(), 4u);
  ASSERT_EQ(r.input_zero_points.size(), 4u);
  EXPECT_TRUE(t.input_scales.empty() && t.input_zero_points.empty());
  float largest = 0;
  for (int g = 0; g < 4; ++g) {
    EXPECT_LE(r.input_scales[static_cast<size_t>(g)], t.input_scale * (1 + 1e-6f));
    EXPECT_EQ(r.input_zero_points[static_cast<size_t>(g)], 0);  // after a ReLU
    largest = std::max(largest, r.input_scales[static_cast<size_t>(g)]);
  }
  EXPECT_FLOAT_EQ(largest, t.input_scale);
  EXPECT_LT(*std::min_element(r.input_scales.begin(), r.input_scales.end()), largest)
      << "the regions' ranges should differ on random weights";
  // The one-channel stem has one region: per tensor either way.
  EXPECT_TRUE(region.ops[0].quant.input_scales.empty());
  // Validation names what is wrong.
  HeadGraph bad = region;
  bad.ops[2].quant.input_scales.pop_back();
  auto st = bad.Validate();
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("3 input scales and 4 input zero points for 4 regions"), std::string::npos) << st.message();
  bad = region;
  bad.ops[2].quant.input_zero_points[1] = 16;
  st = bad.Validate();
  EXPECT_EQ(st.code(), ErrorCode::kOutOfRange);
  EXPECT_NE(st.message().find("input zero point 16 of region 1"), std::string::npos) << st.message();
  bad = region;
  bad.ops[2].quant.weight_scales[3] = 0.f;  // Requantize refuses it: refused at load instead
  st = bad.Validate();
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("weight scale is not positive"), std::string::npos) << st.message();
  bad = region;
  bad.ops[2].weight[5] = std::numeric_limits<float>::infinity();
  st = bad.Validate();
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("weight 5 is not finite"), std::string::npos) << st.message();
}

// Version 1 files (one activation range per conv, written before per-region ranges) still load
// and run as before; a version 2 file with per-region arrays of the wrong length is refused.
TEST(HeadTest, VersionOneFilesLoadAndBadRegionArraysAreRefused) {
  std::mt19937 rng(TestSeed());
  HeadGraph g = TinyResNet(rng);
  QuantizeOptions o;
  o.group_size = 4;
  o.region_activations = false;
  ASSERT_TRUE(QuantizeGraph(g, Images(2, rng), o).ok());
  const auto dir = std::filesystem::temp_directory_path() / ("si_head_v1_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "h.sihead").string();
  ASSERT_TRUE(SaveHead(path, g).ok());
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_EQ(bytes[8], 2);
  bytes[8] = 1;  // what version 1 wrote for the same graph
  auto v1 = ParseHead(bytes.data(), bytes.size());
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  const Tensor3 x = RandomTensor(3, 20, 20, rng);
  EXPECT_EQ(QuantizedHead::Prepare(*v1)->Run(x, HeadImpl::kInt8)->data,
            QuantizedHead::Prepare(g)->Run(x, HeadImpl::kInt8)->data);

  o.region_activations = true;
  HeadGraph r = TinyResNet(rng);
  ASSERT_TRUE(QuantizeGraph(r, Images(2, rng), o).ok());
  ASSERT_TRUE(SaveHead(path, r).ok());
  std::ifstream f2(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(f2)), std::istreambuf_iterator<char>());
  // Shorten the first per-region array by one value (",<number>]" -> "]"), header length kept
  // by padding the JSON with spaces.
  const size_t at = text.find("\"input_scales\":[");
  ASSERT_NE(at, std::string::npos);
  const size_t close = text.find(']', at);
  const size_t comma = text.rfind(',', close);
  ASSERT_GT(comma, at);
  text.replace(comma, close - comma, std::string(close - comma, ' '));
  std::swap(text[comma], text[close]);  // "]" then spaces: still valid JSON, one value fewer
  auto bad = ParseHead(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("one value per region"), std::string::npos) << bad.status().message();
  std::filesystem::remove_all(dir);
}

TEST(HeadTest, FileRoundTripAndBadFiles) {
  std::mt19937 rng(TestSeed());
  HeadGraph g = TinyResNet(rng);
  QuantizeOptions o;
  o.wbits = 2;
  o.abits = 4;
  o.group_size = 4;
  ASSERT_TRUE(QuantizeGraph(g, Images(4, rng), o).ok());
  const auto dir = std::filesystem::temp_directory_path() / ("si_head_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "h.sihead").string();
  ASSERT_TRUE(SaveHead(path, g).ok());
  auto back = LoadHead(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->ops.size(), g.ops.size());
  const Tensor3 x = RandomTensor(3, 20, 20, rng);
  auto a = QuantizedHead::Prepare(g)->Run(x, HeadImpl::kLut);
  auto b = QuantizedHead::Prepare(*back)->Run(x, HeadImpl::kLut);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->data, b->data);

  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // Truncated: the blob runs past the end.
  auto cut = ParseHead(bytes.data(), bytes.size() - 10);
  EXPECT_EQ(cut.status().code(), ErrorCode::kDataLoss);
  EXPECT_NE(cut.status().message().find("runs past the end"), std::string::npos);
  // Not a head file.
  std::vector<uint8_t> bad = bytes;
  bad[0] = 'X';
  EXPECT_EQ(ParseHead(bad.data(), bad.size()).status().code(), ErrorCode::kInvalidArgument);
  // A newer version.
  bad = bytes;
  bad[8] = 9;
  EXPECT_EQ(ParseHead(bad.data(), bad.size()).status().code(), ErrorCode::kUnimplemented);
  // Header length past the file.
  bad = bytes;
  bad[15] = 0x7f;
  EXPECT_EQ(ParseHead(bad.data(), bad.size()).status().code(), ErrorCode::kDataLoss);
  EXPECT_EQ(LoadHead((dir / "none.sihead").string()).status().code(), ErrorCode::kNotFound);
  // Random byte flips: always a value, never a crash (the fuzz corpus idea, in miniature).
  std::uniform_int_distribution<size_t> pos(0, bytes.size() - 1);
  std::uniform_int_distribution<int> val(0, 255);
  int rejected = 0;
  for (int t = 0; t < 300; ++t) {
    bad = bytes;
    for (int k = 0; k < 3; ++k) bad[pos(rng)] = static_cast<uint8_t>(val(rng));
    auto r = ParseHead(bad.data(), bad.size());
    if (!r.ok()) ++rejected;
  }
  EXPECT_GT(rejected, 0);
  std::filesystem::remove_all(dir);
}

// The separable max-pool against the direct loop, on random shapes, windows and paddings.
TEST(HeadTest, MaxPoolMatchesTheDirectLoop) {
  std::mt19937 rng(TestSeed());
  for (int t = 0; t < 40; ++t) {
    const int k = 1 + static_cast<int>(rng() % 4), s = 1 + static_cast<int>(rng() % 3);
    const int p = static_cast<int>(rng() % static_cast<unsigned>(k));
    const int h = k + static_cast<int>(rng() % 9), w = k + static_cast<int>(rng() % 9);
    const Tensor3 in = RandomTensor(1 + static_cast<int>(rng() % 3), h, w, rng);
    const Tensor3 got = MaxPool2d(in, k, s, p);
    ASSERT_EQ(got.h, (h + 2 * p - k) / s + 1);
    ASSERT_EQ(got.w, (w + 2 * p - k) / s + 1);
    for (int c = 0; c < in.c; ++c) {
      for (int y = 0; y < got.h; ++y) {
        for (int x = 0; x < got.w; ++x) {
          float m = -std::numeric_limits<float>::infinity();
          for (int ky = 0; ky < k; ++ky) {
            for (int kx = 0; kx < k; ++kx) {
              const int iy = y * s - p + ky, ix = x * s - p + kx;
              if (iy >= 0 && iy < h && ix >= 0 && ix < w) m = std::max(m, in.data[(static_cast<size_t>(c) * h + iy) * w + ix]);
            }
          }
          ASSERT_EQ(got.data[(static_cast<size_t>(c) * got.h + y) * got.w + x], m) << "k" << k << " s" << s << " p" << p;
        }
      }
    }
  }
}

TEST(HeadTest, ImplementationNames) {
  for (HeadImpl impl : {HeadImpl::kInt8, HeadImpl::kLut, HeadImpl::kReference, HeadImpl::kAuto})
    EXPECT_EQ(ParseHeadImpl(HeadImplName(impl)).value(), impl);
  auto bad = ParseHeadImpl("fast");
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("unknown low-bit implementation 'fast'; use int8, lut, reference or auto"),
            std::string::npos);
}

TEST(HeadTest, GraphErrorsNameTheOp) {
  std::mt19937 rng(TestSeed());
  HeadGraph g = TinyResNet(rng);
  g.ops[3].residual = 5;  // written later
  Status s = g.Validate();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("op 3 (b1.conv2): residual register 5"), std::string::npos) << s.message();
  g = TinyResNet(rng);
  g.ops[4].shape.in_channels = 7;
  s = g.Validate();
  EXPECT_NE(s.message().find("op 4 (b2.conv1): expects a 7x5x5 input"), std::string::npos) << s.message();
  g = TinyResNet(rng);
  auto run = RunFloat(g, RandomTensor(3, 21, 20, rng));
  EXPECT_EQ(run.status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace splitinfer::kernels
