#include "core/status.h"

#include <gtest/gtest.h>

namespace splitinfer {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgument("odd: " + std::to_string(x));
  return x / 2;
}

Result<int> Quarter(int x) {
  SI_ASSIGN_OR_RETURN(int h, Half(x));
  SI_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(StatusTest, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), ErrorCode::kOk);
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, ErrorCarriesCodeAndMessage) {
  Status s = NotFound("no such file x");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), ErrorCode::kNotFound);
  EXPECT_EQ(s.ToString(), "NOT_FOUND: no such file x");
}

TEST(StatusTest, CodesArePinned) {
  // The numbers appear in logs and JSON: changing one is a format change.
  EXPECT_EQ(static_cast<int>(ErrorCode::kInvalidArgument), 1);
  EXPECT_EQ(static_cast<int>(ErrorCode::kNotFound), 2);
  EXPECT_EQ(static_cast<int>(ErrorCode::kFailedPrecondition), 3);
  EXPECT_EQ(static_cast<int>(ErrorCode::kDataLoss), 4);
  EXPECT_EQ(static_cast<int>(ErrorCode::kMismatch), 9);
  EXPECT_STREQ(ErrorCodeName(ErrorCode::kMismatch), "MISMATCH");
  EXPECT_EQ(static_cast<int>(ErrorCode::kDeadlineExceeded), 10);
  EXPECT_EQ(static_cast<int>(ErrorCode::kResourceExhausted), 11);
  EXPECT_EQ(static_cast<int>(ErrorCode::kUnavailable), 12);
  EXPECT_EQ(static_cast<int>(ErrorCode::kUnauthenticated), 13);
  EXPECT_STREQ(ErrorCodeName(ErrorCode::kResourceExhausted), "RESOURCE_EXHAUSTED");
}

TEST(ResultTest, ValueAndPropagation) {
  auto q = Quarter(12);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, 3);
  auto bad = Quarter(6);  // 6 -> 3 -> odd
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "odd: 3");
}

}  // namespace
}  // namespace splitinfer
