// Invalid calls throw the typed error naming the bad value and leave `out` untouched.
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <string>

#include "attention_test_util.h"
#include "pagedkv/common/errors.h"

namespace pagedkv::testing {
namespace {

constexpr float kSentinel = 7.0f;

// A valid call (2 requests, page size 16, 2 kv heads, 8 q heads, head_dim 64) that each test
// breaks in exactly one way.
class AttentionErrors : public ::testing::Test {
 protected:
  AttentionErrors()
      : cache_(KVLayout::kHND, DType::kInt8, 10, 16, 2, 64),
        tb_(make_batch(cache_, {{1, 40}, {3, 20}}, 8, /*seed=*/1)) {
    table_ = tb_.dense_table(&max_pages_);
    kv_ = cache_.view();
    qsl_ = tb_.query_start_loc;
    lens_ = tb_.seq_lens;
    query_ = ConstTokenTensor::f32(tb_.query.data(), tb_.num_tokens(), 8, 64);
    out_.assign(tb_.query.size(), kSentinel);
  }

  void call() {
    paged_attention(
        kv_, query_,
        {qsl_, lens_,
         use_csr_ ? PageTableRef::csr(indptr_, indices_) : PageTableRef::dense(table_, max_pages_)},
        opt_, out_);
  }

  // Expects `E` whose message contains `needle`, and `out` unchanged.
  template <typename E>
  void expect_error(const std::string& needle) {
    try {
      call();
      ADD_FAILURE() << "no error thrown";
    } catch (const E& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    for (float x : out_) ASSERT_EQ(x, kSentinel);
  }

  TestCache cache_;
  TestBatch tb_;
  PagedKVView kv_;
  ConstTokenTensor query_;
  std::vector<int32_t> qsl_, lens_, table_, indptr_, indices_;
  int32_t max_pages_ = 0;
  bool use_csr_ = false;
  AttentionOptions opt_{.scale = 0.125f};
  std::vector<float> out_;
};

TEST_F(AttentionErrors, TheUnbrokenCallSucceeds) {
  call();
  EXPECT_NE(out_[0], kSentinel);
}

TEST_F(AttentionErrors, NonPositiveOrNonFiniteScaleIsInvalid) {
  opt_.scale = 0.0f;
  expect_error<InvalidArgument>("scale");
  opt_.scale = std::numeric_limits<float>::infinity();
  expect_error<InvalidArgument>("scale");
}

TEST_F(AttentionErrors, NegativeWindowOrSoftCapIsInvalid) {
  opt_.sliding_window = -1;
  expect_error<InvalidArgument>("sliding_window must be >= 0");
  opt_.sliding_window = 0;
  opt_.soft_cap = -2.0f;
  expect_error<InvalidArgument>("soft_cap");
  opt_.soft_cap = std::numeric_limits<float>::quiet_NaN();
  expect_error<InvalidArgument>("soft_cap");
}

TEST_F(AttentionErrors, QueryHeadsNotAMultipleOfKvHeadsIsInvalid) {
  query_.heads = 7;
  expect_error<InvalidArgument>("query heads (7)");
}

TEST_F(AttentionErrors, QueryHeadDimMismatchIsInvalid) {
  query_.dim = 128;
  expect_error<InvalidArgument>("query head_dim 128 != cache head_dim 64");
}

TEST_F(AttentionErrors, HeadDimNotAMultipleOf16IsInvalid) {
  kv_.head_dim = 40;
  query_.dim = 40;
  expect_error<InvalidArgument>("got 40");
}

TEST_F(AttentionErrors, UnsupportedQueryDtypeIsInvalid) {
  query_.dtype = DType::kInt8;
  expect_error<InvalidArgument>("query dtype");
}

TEST_F(AttentionErrors, QueryTensorInvariantsNameTheBrokenField) {
  query_.heads = 0;
  expect_error<InvalidArgument>("query.heads must be > 0, got 0");
  query_ = ConstTokenTensor::f32(nullptr, tb_.num_tokens(), 8, 64);
  expect_error<InvalidArgument>("query has 4 rows but its data is null");
}

TEST_F(AttentionErrors, OutputOfTheWrongSizeIsInvalid) {
  out_.push_back(kSentinel);
  expect_error<InvalidArgument>("out has");
}

TEST_F(AttentionErrors, QueryStartLocMustStartAtZeroAndEndAtNumTokens) {
  qsl_[0] = 1;
  expect_error<InvalidArgument>("query_start_loc[0] must be 0, got 1");
  qsl_[0] = 0;
  qsl_.back() = 3;
  expect_error<InvalidArgument>("must equal num_tokens 4");
}

TEST_F(AttentionErrors, DecreasingQueryStartLocIsInvalid) {
  query_.rows = 4;
  qsl_ = {0, 3, 2, 4};
  lens_ = {40, 20, 20};
  table_.resize(3 * max_pages_, 1);
  expect_error<InvalidArgument>("non-decreasing");
}

TEST_F(AttentionErrors, SeqLensCountMustMatchTheRequests) {
  lens_.pop_back();
  expect_error<InvalidArgument>("seq_lens has 1 entries");
}

TEST_F(AttentionErrors, SeqLenShorterThanItsQueryTokensIsInvalid) {
  lens_[1] = 2;
  expect_error<InvalidArgument>("seq_lens[1] = 2 is shorter than its 3 query tokens");
}

TEST_F(AttentionErrors, TooFewPageTableColumnsIsInvalid) {
  lens_[0] = 16 * max_pages_ + 1;
  expect_error<InvalidArgument>("page table has");
}

TEST_F(AttentionErrors, PageIdOutsideTheCacheIsOutOfRange) {
  table_[1] = 10;
  expect_error<OutOfRange>("is page id 10, outside the cache's [0, 10)");
  table_[1] = -1;
  expect_error<OutOfRange>("page id -1");
}

TEST_F(AttentionErrors, PagesOutsideTheSlidingWindowAreNotChecked) {
  // Request 0 (40 tokens, decode at position 39) with window 8 reads only page 2.
  table_[0] = -1;
  table_[1] = 1000;
  opt_.sliding_window = 8;
  call();
  for (float x : out_) ASSERT_TRUE(std::isfinite(x));
  opt_.sliding_window = 9;  // now position 31 (page 1) is in the window
  std::fill(out_.begin(), out_.end(), kSentinel);
  expect_error<OutOfRange>("page id 1000");
}

TEST_F(AttentionErrors, TableSmallerThanRequestsTimesStrideIsInvalid) {
  table_.pop_back();
  expect_error<InvalidArgument>("page table has");
}

TEST_F(AttentionErrors, CsrIndptrMustCoverEveryRequestAndItsPages) {
  use_csr_ = true;
  tb_.csr(&indptr_, &indices_);
  call();  // valid
  std::fill(out_.begin(), out_.end(), kSentinel);
  indptr_.pop_back();
  expect_error<InvalidArgument>("page indptr has 2 entries, expected 3");
  tb_.csr(&indptr_, &indices_);
  indptr_[1] = 2;  // request 0 needs 3 pages for 40 tokens
  expect_error<InvalidArgument>("request 0 has 2 pages, seq_len 40 needs 3");
  tb_.csr(&indptr_, &indices_);
  indices_.pop_back();
  expect_error<InvalidArgument>("exceeds the");
  tb_.csr(&indptr_, &indices_);
  indptr_ = {0, 6, 5};  // 5 indices; request 0 would run past them
  expect_error<InvalidArgument>("page indptr must be non-decreasing: [1] = 6 > [2] = 5");
}

TEST_F(AttentionErrors, Int8ViewWithoutScalesIsInvalid) {
  kv_.v_scales = nullptr;
  expect_error<InvalidArgument>("int8");
}

TEST_F(AttentionErrors, HndViewWithoutValueDataIsInvalid) {
  kv_.v_data = nullptr;
  expect_error<InvalidArgument>("v_data");
}

TEST_F(AttentionErrors, Fp8ScaleMustBePositive) {
  kv_.dtype = DType::kFp8E4M3;
  kv_.k_scale = 0.0f;
  expect_error<InvalidArgument>("k_scale = 0");
}

}  // namespace
}  // namespace pagedkv::testing
