// Balanced factorizations and shape validation.
#include <gtest/gtest.h>

#include "common/error.h"
#include "tt/tensorize.h"

using namespace tsm;

TEST(Tensorize, PaperShapes) {
  EXPECT_EQ(balanced_factorization(768, 3), (std::vector<int64_t>{8, 8, 12}));
  EXPECT_EQ(balanced_factorization(768, 4), (std::vector<int64_t>{4, 4, 4, 12}));
  EXPECT_EQ(balanced_factorization(768, 2), (std::vector<int64_t>{24, 32}));
  EXPECT_EQ(balanced_factorization(768, 1), (std::vector<int64_t>{768}));
  EXPECT_EQ(balanced_factorization(4096, 3), (std::vector<int64_t>{16, 16, 16}));
  EXPECT_EQ(balanced_factorization(64, 3), (std::vector<int64_t>{4, 4, 4}));
}

TEST(Tensorize, ProductAndOrderAlwaysHold) {
  for (int64_t n : {1, 2, 6, 12, 64, 96, 100, 360, 512, 768, 1024, 2048, 50257, 7919}) {
    for (int order = 1; order <= 5; ++order) {
      auto f = balanced_factorization(n, order);
      ASSERT_EQ(static_cast<int>(f.size()), order) << n;
      int64_t p = 1;
      for (size_t i = 0; i < f.size(); ++i) {
        p *= f[i];
        if (i) EXPECT_LE(f[i - 1], f[i]);
      }
      EXPECT_EQ(p, n) << n << " order " << order;
    }
  }
  EXPECT_EQ(balanced_factorization(7919, 3), (std::vector<int64_t>{1, 1, 7919}));  // prime
  EXPECT_EQ(balanced_factorization(50257, 3), (std::vector<int64_t>{1, 29, 1733}));  // 29 * 1733
  EXPECT_EQ(balanced_factorization(6, 3), (std::vector<int64_t>{1, 2, 3}));
}

TEST(Tensorize, RejectsBadInput) {
  EXPECT_THROW(balanced_factorization(0, 3), ParamError);
  EXPECT_THROW(balanced_factorization(768, 0), ParamError);
  std::vector<int64_t> ok{8, 8, 12}, bad{8, 8, 8}, zero{0, 768};
  EXPECT_NO_THROW(validate_shape(ok, 768));
  try {
    validate_shape(bad, 768);
    FAIL();
  } catch (const ParamError& e) {
    EXPECT_EQ(e.field(), "shape");
    EXPECT_NE(std::string(e.what()).find("512"), std::string::npos) << e.what();
  }
  EXPECT_THROW(validate_shape(zero, 768), ParamError);
  EXPECT_THROW(validate_shape(std::vector<int64_t>{}, 768), ParamError);
}
