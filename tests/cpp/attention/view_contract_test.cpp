// The KV view contract is one: write_slots and paged_attention accept and reject exactly the
// same views, with the same message (PagedKVView::validate), for every layout and dtype.
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kv_cache/kv_test_util.h"
#include "pagedkv/attention/paged_attention.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/kv_cache/kv_cache_write.h"

namespace pagedkv {
namespace {

constexpr int32_t kKvHeads = 2, kQHeads = 4, kDim = 64;

struct Mutation {
  const char* name;
  std::function<void(PagedKVView&)> apply;
};

std::vector<Mutation> mutations() {
  static float elsewhere[64];
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  return {
      {"none", [](PagedKVView&) {}},
      {"layout code 7", [](PagedKVView& v) { v.layout = KVLayout{7}; }},
      {"dtype code 9", [](PagedKVView& v) { v.dtype = DType{9}; }},
      {"num_pages 0", [](PagedKVView& v) { v.num_pages = 0; }},
      {"page_size -1", [](PagedKVView& v) { v.page_size = -1; }},
      {"num_kv_heads 0", [](PagedKVView& v) { v.num_kv_heads = 0; }},
      {"head_dim 0", [](PagedKVView& v) { v.head_dim = 0; }},
      {"huge", [](PagedKVView& v) { v.num_pages = std::numeric_limits<int64_t>::max() / 64; }},
      {"k_data null", [](PagedKVView& v) { v.k_data = nullptr; }},
      {"v_data null", [](PagedKVView& v) { v.v_data = nullptr; }},
      {"v_data elsewhere", [](PagedKVView& v) { v.v_data = v.v_data ? v.v_data : elsewhere; }},
      {"k_scales null", [](PagedKVView& v) { v.k_scales = nullptr; }},
      {"v_scales null", [](PagedKVView& v) { v.v_scales = nullptr; }},
      {"scales elsewhere",
       [](PagedKVView& v) {
         if (v.dtype != DType::kInt8) v.k_scales = v.v_scales = elsewhere;
       }},
      {"k_scale 0", [](PagedKVView& v) { v.k_scale = 0.0f; }},
      {"k_scale -1", [](PagedKVView& v) { v.k_scale = -1.0f; }},
      {"k_scale nan", [nan](PagedKVView& v) { v.k_scale = nan; }},
      {"v_scale 0", [](PagedKVView& v) { v.v_scale = 0.0f; }},
      {"v_scale inf", [inf](PagedKVView& v) { v.v_scale = inf; }},
  };
}

// "" when the call succeeds, else the InvalidArgument message (other errors fail the test).
template <class Call>
std::string outcome(Call call) {
  try {
    call();
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "";
}

// The rule both paths follow: only fields the layout and dtype use are checked.
bool expect_valid(const Mutation& m, KVLayout layout, DType dtype) {
  const std::string n = m.name;
  if (n == "none" || n == "v_data elsewhere" || n == "scales elsewhere") return true;
  if (n == "v_data null") return layout == KVLayout::kNHD;
  if (n == "k_scales null" || n == "v_scales null") return dtype != DType::kInt8;
  if (n.rfind("k_scale ", 0) == 0 || n.rfind("v_scale ", 0) == 0) {
    return dtype != DType::kFp8E4M3;
  }
  return false;
}

TEST(KVViewContract, WritesAndAttentionAcceptAndRejectTheSameViewsWithTheSameMessage) {
  std::mt19937 rng(1);
  const auto key = testing::random_tokens(rng, DType::kFloat32, 1, kKvHeads, kDim, 0.5f);
  const auto value = testing::random_tokens(rng, DType::kFloat32, 1, kKvHeads, kDim, 0.5f);
  const std::vector<float> query(kQHeads * kDim, 0.25f);
  const std::vector<int64_t> slots = {3};
  const std::vector<int32_t> qsl = {0, 1}, lens = {4}, table = {0};
  for (KVLayout layout : testing::kLayouts) {
    for (DType dtype : testing::kAllCacheDtypes) {
      PagedKVCache cache(testing::small_metadata(layout, dtype, 16, 4, kKvHeads, kDim));
      for (const Mutation& m : mutations()) {
        SCOPED_TRACE(fmt::format("{} {} {}", kv_layout_name(layout), dtype_name(dtype), m.name));
        PagedKVView v = cache.view(0);
        m.apply(v);
        const std::string write =
            outcome([&] { write_slots(v, key.tensor(), value.tensor(), slots); });
        std::vector<float> out(query.size());
        const std::string attend = outcome([&] {
          paged_attention(v, ConstTokenTensor::f32(query.data(), 1, kQHeads, kDim),
                          {qsl, lens, PageTableRef::dense(table, 1)}, {.scale = 0.125f}, out);
        });
        EXPECT_EQ(write, attend);
        EXPECT_EQ(write.empty(), expect_valid(m, layout, dtype)) << write;
        if (!write.empty()) {
          EXPECT_NE(write.find("PagedKVView"), std::string::npos) << write;
        }
        cache.verify();
      }
    }
  }
}

}  // namespace
}  // namespace pagedkv
