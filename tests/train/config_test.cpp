#include "train/config.h"

#include <gtest/gtest.h>

#include <fstream>

namespace splitinfer::train {
namespace {

TEST(TrainConfigTest, EmptyDocumentGivesDefaults) {
  auto c = ParseTrainConfig("", "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->model.name, "resnet_fmnist");
  EXPECT_EQ(c->epochs, 30);
}

TEST(TrainConfigTest, ReadsNestedValues) {
  auto c = ParseTrainConfig(
      "model: {name: resnet_fmnist, width: 32}\noptimizer: {name: adamw, lr: 0.001}\nepochs: 3\n"
      "schedule: {name: cosine}\naugment: {crop_padding: 4, flip_probability: 0}\n",
      "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->model.options.width, 32);
  EXPECT_EQ(c->optimizer.name, "adamw");
  EXPECT_DOUBLE_EQ(c->optimizer.lr, 0.001);
  EXPECT_EQ(c->epochs, 3);
  EXPECT_EQ(c->augment.crop_padding, 4);
}

TEST(TrainConfigTest, UnknownKeyIsNamedWithTheValidOnes) {
  auto c = ParseTrainConfig("optimizer: {lrr: 0.1}\n", "my.yaml");
  ASSERT_EQ(c.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("my.yaml: unknown key 'optimizer.lrr'"), std::string::npos)
      << c.status().message();
  EXPECT_NE(c.status().message().find("lr"), std::string::npos);
}

TEST(TrainConfigTest, UnknownTopLevelKey) {
  auto c = ParseTrainConfig("epoch: 3\n", "t.yaml");
  ASSERT_EQ(c.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("'epoch'"), std::string::npos);
}

TEST(TrainConfigTest, WrongTypeIsInvalidArgument) {
  auto c = ParseTrainConfig("epochs: many\n", "t.yaml");
  ASSERT_EQ(c.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("wrong type"), std::string::npos);
}

TEST(TrainConfigTest, OutOfRangeAndBadEnum) {
  EXPECT_EQ(ParseTrainConfig("batch_size: 0\n", "t").status().code(), ErrorCode::kOutOfRange);
  auto c = ParseTrainConfig("optimizer: {name: lion}\n", "t");
  ASSERT_EQ(c.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("sgd, adamw"), std::string::npos);
}

TEST(TrainConfigTest, BrokenYaml) {
  EXPECT_EQ(ParseTrainConfig("model: [unclosed\n", "t").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ParseTrainConfig("- a\n- b\n", "t").status().code(), ErrorCode::kInvalidArgument);
}

TEST(TrainConfigTest, MissingFileIsNotFound) {
  EXPECT_EQ(LoadTrainConfig("/nonexistent.yaml").status().code(), ErrorCode::kNotFound);
}

TEST(TrainConfigTest, ShippedConfigsParse) {
  auto c = LoadTrainConfig(std::string(SPLITINFER_SOURCE_DIR) + "/configs/fmnist_resnet.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->model.options.width, 64);
}

}  // namespace
}  // namespace splitinfer::train
