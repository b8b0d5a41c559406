// COCO annotation files: a good one read as written, and one malformed file per check, each
// refused with the entry and the fix named.
#include "data/coco.h"

#include <gtest/gtest.h>

#include <string>

namespace splitinfer::data {
namespace {

const char* kGood = R"({
  "info": {"description": "ignored"},
  "images": [{"id": 3, "file_name": "a.png", "width": 128, "height": 96},
             {"id": 7, "file_name": "sub/b.png", "width": 64, "height": 64}],
  "categories": [{"id": 5, "name": "shirt"}, {"id": 1, "name": "bag"}],
  "annotations": [
    {"id": 10, "image_id": 3, "category_id": 1, "bbox": [0, 0, 128, 96], "area": 100.5, "iscrowd": 0,
     "segmentation": [[0, 0, 1, 1]]},
    {"id": 11, "image_id": 3, "category_id": 5, "bbox": [10.5, 20, 30, 40.25]},
    {"id": 12, "image_id": 7, "category_id": 5, "bbox": [-0.4, 0, 64.9, 10], "iscrowd": true}]
})";

TEST(CocoTest, ReadsAGoodFile) {
  auto c = ParseCocoAnnotations(kGood, "good.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->images.size(), 2u);
  EXPECT_EQ(c->images[1].file_name, "sub/b.png");
  EXPECT_EQ(c->images[0].width, 128);
  ASSERT_EQ(c->categories.size(), 2u);
  EXPECT_EQ(c->category_index.at(5), 0);  // the class index is the file's order
  EXPECT_EQ(c->category_index.at(1), 1);
  ASSERT_EQ(c->annotations.size(), 3u);
  EXPECT_DOUBLE_EQ(c->annotations[0].area, 100.5);            // as given
  EXPECT_DOUBLE_EQ(c->annotations[1].area, 30 * 40.25);      // w x h when absent
  EXPECT_DOUBLE_EQ(c->annotations[1].x, 10.5);
  EXPECT_FALSE(c->annotations[1].iscrowd);
  EXPECT_TRUE(c->annotations[2].iscrowd);
  EXPECT_EQ(c->by_image.at(3), (std::vector<size_t>{0, 1}));
  EXPECT_EQ(c->by_image.at(7), (std::vector<size_t>{2}));
}

// One edit of the good file per case: the text to replace, its replacement, what the error says.
struct BadCase {
  const char* name;
  std::string from, to, want;
};

TEST(CocoTest, MalformedFilesAreRefusedWithTheEntryNamed) {
  const std::vector<BadCase> cases = {
      {"missing images", R"("images": [)", R"("imagez": [)", "has no 'images'"},
      {"missing bbox", R"("bbox": [10.5, 20, 30, 40.25])", R"("box": [10.5, 20, 30, 40.25])",
       "annotations[1] (id 11): 'bbox' must be a list of 4 numbers"},
      {"three numbers", R"([10.5, 20, 30, 40.25])", R"([10.5, 20, 30])", "'bbox' must be a list of 4 numbers"},
      {"text in bbox", R"([10.5, 20, 30, 40.25])", R"([10.5, "20", 30, 40.25])", "'bbox' must be a list of 4"},
      {"negative size", R"([10.5, 20, 30, 40.25])", R"([10.5, 20, -30, 40.25])", "negative or non-finite size"},
      {"outside the image", R"([10.5, 20, 30, 40.25])", R"([110.5, 20, 30, 40.25])",
       "reaches outside its image a.png (128x96)"},
      {"unknown category", R"("category_id": 5, "bbox": [10.5)", R"("category_id": 9, "bbox": [10.5)",
       "annotations[1] (id 11): category_id 9 is not in 'categories'"},
      {"unknown image", R"("image_id": 7,)", R"("image_id": 8,)", "image_id 8 is not in 'images'"},
      {"duplicated annotation id", R"("id": 11,)", R"("id": 10,)", "annotations[1] (id 10): annotation id appears twice"},
      {"duplicated image id", R"("id": 7, "file_name")", R"("id": 3, "file_name")", "image id 3 appears twice"},
      {"duplicated category id", R"({"id": 1, "name": "bag"})", R"({"id": 5, "name": "bag"})",
       "category id 5 appears twice"},
      {"string id", R"("id": 11,)", R"("id": "11",)", "'id' must be an integer"},
      {"zero width", R"("width": 64)", R"("width": 0)", "width and height must be positive"},
      {"escaping file name", R"("sub/b.png")", R"("../b.png")", "must name a file inside the image folder"},
      {"bad iscrowd", R"("iscrowd": true)", R"("iscrowd": 2)", "'iscrowd' must be 0 or 1"},
      {"negative area", R"("area": 100.5)", R"("area": -1)", "'area' must be a number >= 0"},
      {"no categories", R"([{"id": 5, "name": "shirt"}, {"id": 1, "name": "bag"}])", "[]", "'categories' is empty"},
      {"not json", R"("info": {)", R"("info": {{)", "is not valid JSON"},
  };
  for (const auto& c : cases) {
    std::string text = kGood;
    const auto at = text.find(c.from);
    ASSERT_NE(at, std::string::npos) << c.name;
    text.replace(at, c.from.size(), c.to);
    auto r = ParseCocoAnnotations(text, "bad.json");
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument) << c.name;
    EXPECT_NE(r.status().message().find(c.want), std::string::npos) << c.name << ": " << r.status().message();
    EXPECT_EQ(r.status().message().rfind("bad.json", 0), 0u) << c.name << ": " << r.status().message();
  }
}

TEST(CocoTest, MissingFileIsNotFound) {
  auto r = LoadCocoAnnotations("/nonexistent/instances_test.json");
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace splitinfer::data
