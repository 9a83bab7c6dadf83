#include "pagedkv/kv_cache/paged_kv_cache_metadata.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

PagedKVCacheConfig llama_config() {
  PagedKVCacheConfig c;
  c.batch_size = 8;
  c.num_hidden_layers = 2;
  c.max_sequences = 1000;
  c.page_size = 16;
  c.num_kv_heads = 8;
  c.kv_head_dim_size = 128;
  c.hbm_utilization = 0.5;
  c.dtype = DType::kBFloat16;
  c.layout = KVLayout::kHND;
  c.memory_budget_bytes = uint64_t{1} << 30;
  return c;
}

template <class Fn>
void expect_invalid_naming(Fn fn, const std::string& needle) {
  try {
    fn();
    FAIL() << "no throw, expected a message naming " << needle;
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(PagedKVCacheMetadata, CreateSizesPagesFromTheBudgetAndUtilization) {
  const auto md = PagedKVCacheMetadata::create(llama_config());
  // One page of one layer: K + V = 2 * 8 heads * 16 tokens * 128 dims * 2 bytes = 65536.
  EXPECT_EQ(md.bytes_per_page_per_layer(), 65536);
  EXPECT_EQ(md.bytes_per_page_all_layers(), 131072);
  EXPECT_EQ(md.num_pages_per_layer, (int64_t{1} << 29) / 131072);
  EXPECT_EQ(md.num_pages_per_sequence, 63);  // cdiv(1000, 16)
  EXPECT_EQ(md.max_sequences, 1000);
  EXPECT_EQ(md.memory_utilization(), 0.5);
  EXPECT_EQ(md.total_bytes(), md.num_pages_per_layer * 131072);
}

TEST(PagedKVCacheMetadata, Int8PagesIncludeTheirFloatScales) {
  auto c = llama_config();
  c.dtype = DType::kInt8;
  const auto md = PagedKVCacheMetadata::create(c);
  EXPECT_EQ(md.bytes_per_page_per_layer(), 2 * 8 * 16 * 128 + 2 * 8 * 16 * 4);
  EXPECT_EQ(md.num_pages_per_layer, (int64_t{1} << 29) / (2 * md.bytes_per_page_per_layer()));
}

TEST(PagedKVCacheMetadata, DefaultBudgetIsThePhysicalMemory) {
  auto c = llama_config();
  c.memory_budget_bytes = 0;
  c.hbm_utilization = 0.01;
  const auto md = PagedKVCacheMetadata::create(c);
  const uint64_t phys = PagedKVCacheMetadata::physical_memory_bytes();
  EXPECT_GT(phys, 0u);
  const auto usable = std::floor(static_cast<long double>(phys) * 0.01L);
  EXPECT_EQ(md.num_pages_per_layer, static_cast<int64_t>(std::floor(usable / 131072)));
}

TEST(PagedKVCacheMetadata, BudgetMustHoldOneMaxLengthSequencePlusTheNullPage) {
  auto c = llama_config();
  c.hbm_utilization = 1.0;
  c.memory_budget_bytes = 64 * 131072;  // exactly 63 + 1 pages
  EXPECT_EQ(PagedKVCacheMetadata::create(c).num_pages_per_layer, 64);
  c.memory_budget_bytes -= 1;
  expect_invalid_naming([&] { PagedKVCacheMetadata::create(c); }, "64 needed");
}

TEST(PagedKVCacheMetadata, CreateRejectsEveryNonPositiveDimensionNamingIt) {
  const std::pair<int32_t PagedKVCacheConfig::*, const char*> fields[] = {
      {&PagedKVCacheConfig::batch_size, "batch_size"},
      {&PagedKVCacheConfig::num_hidden_layers, "num_hidden_layers"},
      {&PagedKVCacheConfig::max_sequences, "max_sequences"},
      {&PagedKVCacheConfig::page_size, "page_size"},
      {&PagedKVCacheConfig::num_kv_heads, "num_kv_heads"},
      {&PagedKVCacheConfig::kv_head_dim_size, "kv_head_dim_size"}};
  for (const auto& [field, name] : fields) {
    for (int32_t bad : {0, -3}) {
      auto c = llama_config();
      c.*field = bad;
      expect_invalid_naming([&] { PagedKVCacheMetadata::create(c); },
                            std::string(name) + " must be > 0, got " + std::to_string(bad));
    }
  }
}

TEST(PagedKVCacheMetadata, UtilizationMustLieInZeroExclusiveOneInclusive) {
  for (double bad : {0.0, -0.1, 1.0000001, std::nan("")}) {
    auto c = llama_config();
    c.hbm_utilization = bad;
    expect_invalid_naming([&] { PagedKVCacheMetadata::create(c); }, "hbm_utilization");
  }
  auto c = llama_config();
  c.hbm_utilization = 1.0;
  EXPECT_NO_THROW(PagedKVCacheMetadata::create(c));
}

TEST(PagedKVCacheMetadata, HugeDimensionsOverflowIntoAnErrorNotAWrap) {
  auto c = llama_config();
  c.num_kv_heads = 1 << 30;
  c.kv_head_dim_size = 1 << 30;
  c.page_size = 1 << 30;
  EXPECT_THROW(PagedKVCacheMetadata::create(c), InvalidArgument);
}

TEST(PagedKVCacheMetadata, JsonRoundTripsExactlyIncludingDoubles) {
  for (double util : {0.1 + 0.2, 1.0 / 3.0, 0.9, 0.123456789012345678}) {
    for (DType dt : {DType::kFloat32, DType::kInt8, DType::kFp8E4M3}) {
      auto c = llama_config();
      c.hbm_utilization = util;
      c.dtype = dt;
      c.layout = KVLayout::kNHD;
      const auto md = PagedKVCacheMetadata::create(c);
      const auto back = PagedKVCacheMetadata::from_json(md.to_json());
      EXPECT_EQ(back, md);
      EXPECT_EQ(back.hbm_utilization, util);
      EXPECT_EQ(back.to_json(), md.to_json());
    }
  }
}

TEST(PagedKVCacheMetadata, FromJsonRejectsMissingUnknownIllTypedAndInconsistentFields) {
  const std::string good = PagedKVCacheMetadata::create(llama_config()).to_json();
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  expect_invalid_naming([&] { PagedKVCacheMetadata::from_json(with("\"page_size\":16,", "")); },
                        "lacks 'page_size'");
  expect_invalid_naming(
      [&] {
        PagedKVCacheMetadata::from_json(with("\"page_size\":16", "\"page_size\":16,\"x\":1"));
      },
      "unknown key 'x'");
  expect_invalid_naming(
      [&] { PagedKVCacheMetadata::from_json(with("\"page_size\":16", "\"page_size\":\"16\"")); },
      "'page_size' must be an integer");
  expect_invalid_naming(
      [&] { PagedKVCacheMetadata::from_json(with("\"page_size\":16", "\"page_size\":1.5")); },
      "'page_size' must be an integer");
  expect_invalid_naming(
      [&] {
        PagedKVCacheMetadata::from_json(with("\"page_size\":16", "\"page_size\":4294967312"));
      },
      "outside");
  expect_invalid_naming(
      [&] {
        PagedKVCacheMetadata::from_json(
            with("\"num_pages_per_sequence\":63", "\"num_pages_per_sequence\":62"));
      },
      "num_pages_per_sequence must be cdiv");
  expect_invalid_naming(
      [&] { PagedKVCacheMetadata::from_json(with("\"bfloat16\"", "\"float64\"")); },
      "unknown dtype 'float64'");
  expect_invalid_naming([&] { PagedKVCacheMetadata::from_json(with("\"HND\"", "\"HDN\"")); },
                        "unknown kv layout");
  expect_invalid_naming(
      [&] {
        PagedKVCacheMetadata::from_json(with("\"hbm_utilization\":0.5", "\"hbm_utilization\":2"));
      },
      "hbm_utilization must be in (0, 1], got 2");
  expect_invalid_naming([&] { PagedKVCacheMetadata::from_json("[1, 2]"); }, "must be an object");
  expect_invalid_naming([&] { PagedKVCacheMetadata::from_json("{\"batch_size\":"); },
                        "does not parse");
}

TEST(PagedKVCacheMetadata, LayoutNamesRoundTrip) {
  EXPECT_EQ(parse_kv_layout(kv_layout_name(KVLayout::kHND)), KVLayout::kHND);
  EXPECT_EQ(parse_kv_layout(kv_layout_name(KVLayout::kNHD)), KVLayout::kNHD);
  EXPECT_THROW(parse_kv_layout("HD"), InvalidArgument);
}

}  // namespace
}  // namespace pagedkv
