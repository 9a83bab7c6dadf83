// PagedKVView's contract (validate) and strides, checked field by field.
#include "pagedkv/kv_cache/kv_layout.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/kv_cache/paged_kv_cache_metadata.h"

namespace pagedkv {
namespace {

// A valid view over placeholder arrays (validate() never dereferences them).
PagedKVView base_view(KVLayout layout, DType dtype) {
  static float storage[4];
  PagedKVView v;
  v.layout = layout;
  v.dtype = dtype;
  v.num_pages = 6;
  v.page_size = 16;
  v.num_kv_heads = 2;
  v.head_dim = 64;
  v.k_data = storage;
  v.v_data = layout == KVLayout::kHND ? storage + 1 : nullptr;
  if (dtype == DType::kInt8) {
    v.k_scales = storage + 2;
    v.v_scales = storage + 3;
  }
  if (dtype == DType::kFp8E4M3) {
    v.k_scale = 0.5f;
    v.v_scale = 2.0f;
  }
  return v;
}

// Validates `v`; returns the InvalidArgument message, or "" if it is valid.
std::string error_of(const PagedKVView& v) {
  try {
    v.validate();
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "";
}

struct BrokenField {
  const char* name;
  KVLayout layout;
  DType dtype;
  std::function<void(PagedKVView&)> breaks;
  std::vector<std::string> needles;  // the message names the field and the bad value
};

std::vector<BrokenField> broken_fields() {
  const auto hnd = KVLayout::kHND;
  const auto nhd = KVLayout::kNHD;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  return {
      {"layout",
       hnd,
       DType::kFloat32,
       [](PagedKVView& v) { v.layout = KVLayout{7}; },
       {"PagedKVView.layout", "7"}},
      {"dtype",
       nhd,
       DType::kFloat32,
       [](PagedKVView& v) { v.dtype = DType{9}; },
       {"PagedKVView.dtype", "9"}},
      {"num_pages",
       hnd,
       DType::kBFloat16,
       [](PagedKVView& v) { v.num_pages = 0; },
       {"PagedKVView.num_pages must be > 0, got 0"}},
      {"num_pages<0",
       nhd,
       DType::kBFloat16,
       [](PagedKVView& v) { v.num_pages = -3; },
       {"PagedKVView.num_pages must be > 0, got -3"}},
      {"page_size",
       hnd,
       DType::kFloat16,
       [](PagedKVView& v) { v.page_size = 0; },
       {"PagedKVView.page_size must be > 0, got 0"}},
      {"num_kv_heads",
       nhd,
       DType::kInt8,
       [](PagedKVView& v) { v.num_kv_heads = -1; },
       {"PagedKVView.num_kv_heads must be > 0, got -1"}},
      {"head_dim",
       hnd,
       DType::kFp8E4M3,
       [](PagedKVView& v) { v.head_dim = 0; },
       {"PagedKVView.head_dim must be > 0, got 0"}},
      {"size",
       nhd,
       DType::kFloat32,
       [](PagedKVView& v) { v.num_pages = std::numeric_limits<int64_t>::max() / 1024; },
       {"exceeds int64 byte offsets", "num_pages 9007199254740991"}},
      {"k_data hnd",
       hnd,
       DType::kFloat32,
       [](PagedKVView& v) { v.k_data = nullptr; },
       {"PagedKVView.k_data is null", "key array"}},
      {"k_data nhd",
       nhd,
       DType::kFloat32,
       [](PagedKVView& v) { v.k_data = nullptr; },
       {"PagedKVView.k_data is null", "combined K/V array"}},
      {"v_data",
       hnd,
       DType::kBFloat16,
       [](PagedKVView& v) { v.v_data = nullptr; },
       {"PagedKVView.v_data is null", "HND"}},
      {"k_scales",
       hnd,
       DType::kInt8,
       [](PagedKVView& v) { v.k_scales = nullptr; },
       {"PagedKVView.k_scales is null", "int8"}},
      {"v_scales",
       nhd,
       DType::kInt8,
       [](PagedKVView& v) { v.v_scales = nullptr; },
       {"PagedKVView.v_scales is null", "int8"}},
      {"k_scale 0",
       hnd,
       DType::kFp8E4M3,
       [](PagedKVView& v) { v.k_scale = 0.0f; },
       {"PagedKVView.k_scale = 0 must be finite and > 0", "fp8_e4m3"}},
      {"k_scale < 0",
       nhd,
       DType::kFp8E4M3,
       [](PagedKVView& v) { v.k_scale = -1.5f; },
       {"PagedKVView.k_scale = -1.5"}},
      {"k_scale nan",
       hnd,
       DType::kFp8E4M3,
       [nan](PagedKVView& v) { v.k_scale = nan; },
       {"PagedKVView.k_scale = nan"}},
      {"v_scale inf",
       nhd,
       DType::kFp8E4M3,
       [inf](PagedKVView& v) { v.v_scale = inf; },
       {"PagedKVView.v_scale = inf"}},
      {"v_scale 0",
       hnd,
       DType::kFp8E4M3,
       [](PagedKVView& v) { v.v_scale = 0.0f; },
       {"PagedKVView.v_scale = 0"}},
  };
}

TEST(PagedKVViewContract, EveryBrokenFieldIsAnInvalidArgumentNamingFieldAndValue) {
  for (const BrokenField& c : broken_fields()) {
    SCOPED_TRACE(c.name);
    PagedKVView v = base_view(c.layout, c.dtype);
    ASSERT_EQ(error_of(v), "");
    c.breaks(v);
    const std::string msg = error_of(v);
    ASSERT_FALSE(msg.empty()) << "accepted";
    for (const std::string& needle : c.needles) {
      EXPECT_NE(msg.find(needle), std::string::npos) << msg << " lacks " << needle;
    }
  }
}

// Scales unused by a dtype and v_data unused by kNHD are ignored: whatever they hold, the
// view is valid (a float32 view with k_scale 0 included).
TEST(PagedKVViewContract, FieldsTheLayoutOrDtypeDoesNotUseAreIgnored) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  static float elsewhere[4];
  for (KVLayout layout : {KVLayout::kHND, KVLayout::kNHD}) {
    for (DType dt :
         {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kInt8, DType::kFp8E4M3}) {
      SCOPED_TRACE(fmt::format("{} {}", kv_layout_name(layout), dtype_name(dt)));
      PagedKVView v = base_view(layout, dt);
      if (dt != DType::kFp8E4M3) {
        for (float s : {0.0f, -2.0f, nan}) {
          v.k_scale = s;
          v.v_scale = s;
          EXPECT_EQ(error_of(v), "") << s;
        }
      }
      if (dt != DType::kInt8) {
        v.k_scales = nullptr;
        v.v_scales = nullptr;
        EXPECT_EQ(error_of(v), "");
        v.k_scales = elsewhere;
        EXPECT_EQ(error_of(v), "");
      }
      if (layout == KVLayout::kNHD) {
        v.v_data = elsewhere;
        EXPECT_EQ(error_of(v), "");
      }
    }
  }
}

// The strides reproduce the documented shapes, element by element (naive index arithmetic).
TEST(PagedKVViewStrides, MatchTheDocumentedLayoutsForEverySlotAndHead) {
  for (KVLayout layout : {KVLayout::kHND, KVLayout::kNHD}) {
    SCOPED_TRACE(kv_layout_name(layout));
    PagedKVView v = base_view(layout, DType::kInt8);
    v.num_pages = 5;
    v.page_size = 4;
    v.num_kv_heads = 3;
    v.head_dim = 8;
    const KVStrides st = v.strides();
    const int64_t P = 5, S = 4, H = 3, D = 8;
    for (int64_t page = 0; page < P; ++page) {
      for (int64_t off = 0; off < S; ++off) {
        const int64_t slot = page * S + off;
        for (int32_t h = 0; h < H; ++h) {
          int64_t k, val, sc;
          if (layout == KVLayout::kHND) {  // [H, P, S, D] twice; scales [H, P, S]
            k = ((h * P + page) * S + off) * D;
            val = k;
            sc = (h * P + page) * S + off;
          } else {  // [P * S, 2H, D], K at head 2h and V at 2h + 1; scales [P * S, H]
            k = (slot * 2 * H + 2 * h) * D;
            val = (slot * 2 * H + 2 * h + 1) * D;
            sc = slot * H + h;
          }
          ASSERT_EQ(st.k_elem(slot, h), k) << slot << " " << h;
          ASSERT_EQ(st.v_elem(slot, h), val) << slot << " " << h;
          ASSERT_EQ(st.scale_index(slot, h), sc) << slot << " " << h;
          ASSERT_EQ(v.k_elem(slot, h), k);
          ASSERT_EQ(v.v_elem(slot, h), val);
          ASSERT_EQ(v.scale_index(slot, h), sc);
        }
      }
    }
    // Consecutive slots of one head and consecutive heads of one slot.
    EXPECT_EQ(st.slot_stride, layout == KVLayout::kHND ? D : 2 * H * D);
    EXPECT_EQ(st.head_stride, layout == KVLayout::kHND ? P * S * D : 2 * D);
    EXPECT_EQ(v.v_base(), layout == KVLayout::kHND ? v.v_data : v.k_data);
  }
}

}  // namespace
}  // namespace pagedkv
