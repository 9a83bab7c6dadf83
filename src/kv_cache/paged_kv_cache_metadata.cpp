#include "pagedkv/kv_cache/paged_kv_cache_metadata.h"

#include <unistd.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "pagedkv/common/errors.h"
#include "pagedkv/common/types.h"

namespace pagedkv {

namespace {

// a * b, or InvalidArgument naming `what` when the product does not fit in int64.
int64_t checked_mul(int64_t a, int64_t b, std::string_view what) {
  int64_t r = 0;
  PAGEDKV_CHECK_ARG(!__builtin_mul_overflow(a, b, &r), "{} overflows int64 ({} * {})", what, a, b);
  return r;
}

int64_t page_bytes_per_layer(int32_t num_kv_heads, int32_t page_size, int32_t head_dim,
                             DType dtype) {
  const int64_t slots = checked_mul(int64_t{num_kv_heads}, page_size, "kv heads * page_size");
  const int64_t elems = checked_mul(slots, head_dim, "page elements");
  int64_t bytes = checked_mul(elems, 2 * static_cast<int64_t>(dtype_size(dtype)), "page bytes");
  if (dtype == DType::kInt8) bytes += 2 * slots * static_cast<int64_t>(sizeof(float));
  return bytes;
}

void check_dims(int32_t batch_size, int32_t num_hidden_layers, int32_t max_sequences,
                int32_t page_size, int32_t num_kv_heads, int32_t kv_head_dim_size,
                double hbm_utilization, DType dtype, KVLayout layout) {
  PAGEDKV_CHECK_ARG(batch_size > 0, "batch_size must be > 0, got {}", batch_size);
  PAGEDKV_CHECK_ARG(num_hidden_layers > 0, "num_hidden_layers must be > 0, got {}",
                    num_hidden_layers);
  PAGEDKV_CHECK_ARG(max_sequences > 0,
                    "max_sequences must be > 0, got {} (the max model length in tokens)",
                    max_sequences);
  PAGEDKV_CHECK_ARG(page_size > 0, "page_size must be > 0, got {}", page_size);
  PAGEDKV_CHECK_ARG(num_kv_heads > 0, "num_kv_heads must be > 0, got {}", num_kv_heads);
  PAGEDKV_CHECK_ARG(kv_head_dim_size > 0, "kv_head_dim_size must be > 0, got {}", kv_head_dim_size);
  PAGEDKV_CHECK_ARG(hbm_utilization > 0.0 && hbm_utilization <= 1.0,
                    "hbm_utilization must be in (0, 1], got {}", hbm_utilization);
  dtype_size(dtype);  // throws on an unknown code
  PAGEDKV_CHECK_ARG(layout == KVLayout::kHND || layout == KVLayout::kNHD,
                    "unknown kv layout code {}", static_cast<int>(layout));
}

}  // namespace

std::string_view kv_layout_name(KVLayout layout) {
  switch (layout) {
    case KVLayout::kHND: return "HND";
    case KVLayout::kNHD: return "NHD";
  }
  PAGEDKV_CHECK_ARG(false, "unknown kv layout code {}", static_cast<int>(layout));
  return {};
}

KVLayout parse_kv_layout(std::string_view name) {
  if (name == "HND" || name == "hnd") return KVLayout::kHND;
  if (name == "NHD" || name == "nhd") return KVLayout::kNHD;
  PAGEDKV_CHECK_ARG(false, "unknown kv layout '{}' (expected HND or NHD)", name);
  return KVLayout::kHND;
}

uint64_t PagedKVCacheMetadata::physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_bytes = sysconf(_SC_PAGESIZE);
  PAGEDKV_CHECK_STATE(pages > 0 && page_bytes > 0,
                      "cannot read the physical memory size (sysconf: {} pages of {} bytes)", pages,
                      page_bytes);
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_bytes);
}

PagedKVCacheMetadata PagedKVCacheMetadata::create(const PagedKVCacheConfig& c) {
  check_dims(c.batch_size, c.num_hidden_layers, c.max_sequences, c.page_size, c.num_kv_heads,
             c.kv_head_dim_size, c.hbm_utilization, c.dtype, c.layout);
  const uint64_t budget =
      c.memory_budget_bytes != 0 ? c.memory_budget_bytes : physical_memory_bytes();
  const int64_t per_page =
      checked_mul(page_bytes_per_layer(c.num_kv_heads, c.page_size, c.kv_head_dim_size, c.dtype),
                  c.num_hidden_layers, "bytes of one page over all layers");
  // long double keeps budgets up to 2^64 exact enough that floor() is the intended one.
  const auto usable = static_cast<long double>(
      std::floor(static_cast<long double>(budget) * static_cast<long double>(c.hbm_utilization)));
  const auto pages = static_cast<long double>(std::floor(usable / per_page));
  const int32_t pages_per_seq = cdiv(c.max_sequences, c.page_size);
  const int64_t needed = int64_t{pages_per_seq} + 1;
  PAGEDKV_CHECK_ARG(
      pages >= static_cast<long double>(needed),
      "memory budget {} bytes * hbm_utilization {} holds {} pages of {} bytes "
      "(all layers), below the {} needed for one max-length sequence of {} "
      "tokens plus the null page",
      budget, c.hbm_utilization,
      static_cast<int64_t>(std::min<long double>(pages, static_cast<long double>(needed))),
      per_page, needed, c.max_sequences);
  PagedKVCacheMetadata md;
  md.batch_size = c.batch_size;
  md.num_hidden_layers = c.num_hidden_layers;
  md.num_pages_per_layer = static_cast<int64_t>(pages);
  md.num_pages_per_sequence = pages_per_seq;
  md.max_sequences = c.max_sequences;
  md.page_size = c.page_size;
  md.num_kv_heads = c.num_kv_heads;
  md.kv_head_dim_size = c.kv_head_dim_size;
  md.hbm_utilization = c.hbm_utilization;
  md.dtype = c.dtype;
  md.layout = c.layout;
  md.validate();
  return md;
}

int64_t PagedKVCacheMetadata::bytes_per_page_per_layer() const {
  return page_bytes_per_layer(num_kv_heads, page_size, kv_head_dim_size, dtype);
}

void PagedKVCacheMetadata::validate() const {
  check_dims(batch_size, num_hidden_layers, max_sequences, page_size, num_kv_heads,
             kv_head_dim_size, hbm_utilization, dtype, layout);
  const int32_t want = cdiv(max_sequences, page_size);
  PAGEDKV_CHECK_ARG(num_pages_per_sequence == want,
                    "num_pages_per_sequence must be cdiv(max_sequences {}, page_size {}) = {}, "
                    "got {}",
                    max_sequences, page_size, want, num_pages_per_sequence);
  PAGEDKV_CHECK_ARG(num_pages_per_layer >= int64_t{want} + 1,
                    "num_pages_per_layer must be >= num_pages_per_sequence + 1 = {}, got {}",
                    int64_t{want} + 1, num_pages_per_layer);
  const int64_t layer =
      checked_mul(bytes_per_page_per_layer(), num_pages_per_layer, "bytes per layer");
  checked_mul(layer, num_hidden_layers, "total cache bytes");
}

std::string PagedKVCacheMetadata::to_json() const {
  nlohmann::ordered_json j;
  j["batch_size"] = batch_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_pages_per_layer"] = num_pages_per_layer;
  j["num_pages_per_sequence"] = num_pages_per_sequence;
  j["max_sequences"] = max_sequences;
  j["page_size"] = page_size;
  j["num_kv_heads"] = num_kv_heads;
  j["kv_head_dim_size"] = kv_head_dim_size;
  j["hbm_utilization"] = hbm_utilization;  // printed with enough digits to round-trip
  j["dtype"] = std::string(dtype_name(dtype));
  j["layout"] = std::string(kv_layout_name(layout));
  return j.dump();
}

PagedKVCacheMetadata PagedKVCacheMetadata::from_json(std::string_view text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    PAGEDKV_CHECK_ARG(false, "PagedKVCacheMetadata JSON does not parse: {}", e.what());
  }
  PAGEDKV_CHECK_ARG(j.is_object(), "PagedKVCacheMetadata JSON must be an object, got {}",
                    j.type_name());
  static constexpr std::string_view kKeys[] = {"batch_size",
                                               "num_hidden_layers",
                                               "num_pages_per_layer",
                                               "num_pages_per_sequence",
                                               "max_sequences",
                                               "page_size",
                                               "num_kv_heads",
                                               "kv_head_dim_size",
                                               "hbm_utilization",
                                               "dtype",
                                               "layout"};
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (std::string_view k : kKeys) known = known || key == k;
    PAGEDKV_CHECK_ARG(known, "PagedKVCacheMetadata JSON has unknown key '{}'", key);
  }
  auto int_field = [&](const char* key, int64_t lo, int64_t hi) -> int64_t {
    PAGEDKV_CHECK_ARG(j.contains(key), "PagedKVCacheMetadata JSON lacks '{}'", key);
    const auto& v = j.at(key);
    PAGEDKV_CHECK_ARG(v.is_number_integer(), "'{}' must be an integer, got {}", key, v.dump());
    PAGEDKV_CHECK_ARG(v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(hi)
                                             : v.get<int64_t>() >= lo && v.get<int64_t>() <= hi,
                      "'{}' = {} is outside [{}, {}]", key, v.dump(), lo, hi);
    return v.get<int64_t>();
  };
  auto str_field = [&](const char* key) -> std::string {
    PAGEDKV_CHECK_ARG(j.contains(key), "PagedKVCacheMetadata JSON lacks '{}'", key);
    PAGEDKV_CHECK_ARG(j.at(key).is_string(), "'{}' must be a string, got {}", key,
                      j.at(key).dump());
    return j.at(key).get<std::string>();
  };
  constexpr int64_t i32_min = std::numeric_limits<int32_t>::min();
  constexpr int64_t i32_max = std::numeric_limits<int32_t>::max();
  PagedKVCacheMetadata md;
  md.batch_size = static_cast<int32_t>(int_field("batch_size", i32_min, i32_max));
  md.num_hidden_layers = static_cast<int32_t>(int_field("num_hidden_layers", i32_min, i32_max));
  md.num_pages_per_layer = int_field("num_pages_per_layer", std::numeric_limits<int64_t>::min(),
                                     std::numeric_limits<int64_t>::max());
  md.num_pages_per_sequence =
      static_cast<int32_t>(int_field("num_pages_per_sequence", i32_min, i32_max));
  md.max_sequences = static_cast<int32_t>(int_field("max_sequences", i32_min, i32_max));
  md.page_size = static_cast<int32_t>(int_field("page_size", i32_min, i32_max));
  md.num_kv_heads = static_cast<int32_t>(int_field("num_kv_heads", i32_min, i32_max));
  md.kv_head_dim_size = static_cast<int32_t>(int_field("kv_head_dim_size", i32_min, i32_max));
  PAGEDKV_CHECK_ARG(j.contains("hbm_utilization"), "PagedKVCacheMetadata JSON lacks '{}'",
                    "hbm_utilization");
  PAGEDKV_CHECK_ARG(j.at("hbm_utilization").is_number(),
                    "'hbm_utilization' must be a number, "
                    "got {}",
                    j.at("hbm_utilization").dump());
  md.hbm_utilization = j.at("hbm_utilization").get<double>();
  md.dtype = parse_dtype(str_field("dtype"));
  md.layout = parse_kv_layout(str_field("layout"));
  md.validate();
  return md;
}

}  // namespace pagedkv
