// write_slots at every ISA level and thread count writes the bytes of the naive writer of
// kv_test_util.h (the conversions of dtype.h): on special values (NaN payloads, infinities,
// subnormals, rounding ties, values past the float16 and fp8 ranges), on scattered decode slots
// with several heads (written in blocks of tokens), and on writes large enough to be split by
// slot range across OpenMP threads, with slots written twice far apart.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kv_cache/kv_test_util.h"
#include "pagedkv/common/cpu_info.h"
#include "pagedkv/kv_cache/kv_cache_write.h"
#include "pagedkv/kv_cache/slot_ranges.h"

namespace pagedkv {
namespace {

using testing::CacheBytes;
using testing::HostTokens;

// Sets the ISA cap (or the OpenMP thread count) for a scope.
struct IsaCapScope {
  Isa saved = isa_cap();
  explicit IsaCapScope(Isa cap) { set_isa_cap(cap); }
  ~IsaCapScope() { set_isa_cap(saved); }
};
struct ThreadsScope {
  int saved = omp_get_max_threads();
  explicit ThreadsScope(int n) { omp_set_num_threads(n); }
  ~ThreadsScope() { omp_set_num_threads(saved); }
};

// Every level this CPU runs, scalar first.
std::vector<Isa> isa_levels() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
    if (static_cast<int>(isa) <= static_cast<int>(detected_isa())) out.push_back(isa);
  }
  return out;
}

// float32 bit patterns where a conversion is easy to get wrong, then random bit patterns.
std::vector<uint32_t> special_f32_bits(std::mt19937& rng, size_t n) {
  std::vector<uint32_t> b = {
      0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x00800000,  // zeros, subnormals, min normal
      0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffa12345,  // infinities, NaNs (signalling)
      0x3f808000, 0x3f818000, 0x3f808001, 0xbf818000,              // bfloat16 ties
      0x3f801000, 0x3f803000, 0x477fe000, 0x477fefff, 0x477ff000,  // float16 ties, max, overflow
      0x33800000, 0x33000000, 0x33000001, 0x387fc000, 0xb3400000,  // float16 subnormals and ties
      0x43e00000, 0x43e80000, 0x43df8000, 0x43dfffff, 0xc3f00000,  // fp8 saturation around 448
      0x3c800000, 0x3c7fffff, 0x3b000000, 0x3a800000, 0x3a800001,  // fp8 subnormal edge and ties
      0x3f880000, 0x3f980000, 0x3b400000, 0xbbc00000, 0x3ae00000};
  std::uniform_int_distribution<uint32_t> any;
  while (b.size() < n) b.push_back(any(rng));
  b.resize(n);
  return b;
}

// float16 / bfloat16 bit patterns: NaNs (signalling too), infinities, subnormals, then random.
std::vector<uint16_t> special_16_bits(std::mt19937& rng, size_t n) {
  std::vector<uint16_t> b = {0x0000, 0x8000, 0x0001, 0x83ff, 0x0400, 0x7bff, 0x7c00, 0xfc00,
                             0x7c01, 0x7e00, 0xfd55, 0x7fff, 0x0080, 0x807f, 0x7f80, 0x7f81};
  std::uniform_int_distribution<uint32_t> any(0, 0xffff);
  while (b.size() < n) b.push_back(static_cast<uint16_t>(any(rng)));
  b.resize(n);
  return b;
}

HostTokens tokens_from_bits(DType dtype, int64_t rows, int32_t heads, int32_t dim,
                            std::mt19937& rng) {
  HostTokens t{{}, dtype, rows, heads, dim};
  const auto n = static_cast<size_t>(rows) * static_cast<size_t>(heads) * static_cast<size_t>(dim);
  if (dtype == DType::kFloat32) {
    const std::vector<uint32_t> bits = special_f32_bits(rng, n);
    t.bytes.resize(4 * n);
    std::memcpy(t.bytes.data(), bits.data(), t.bytes.size());
  } else {
    const std::vector<uint16_t> bits = special_16_bits(rng, n);
    t.bytes.resize(2 * n);
    std::memcpy(t.bytes.data(), bits.data(), t.bytes.size());
  }
  return t;
}

// Writes key/value at the slots with write_slots and with the naive writer; the caches must
// come out byte for byte equal.
void expect_naive_bytes(PagedKVCache& cache, const HostTokens& key, const HostTokens& value,
                        const std::vector<int64_t>& slots) {
  CacheBytes want = testing::snapshot(cache);
  const testing::NaiveWriter naive{cache.metadata(), cache.k_scale(), cache.v_scale()};
  for (size_t t = 0; t < slots.size(); ++t) {
    if (slots[t] >= 0) naive.write_token(want, key, value, static_cast<int64_t>(t), slots[t]);
  }
  write_slots(cache.view(0), key.tensor(), value.tensor(), slots);
  ASSERT_TRUE(testing::snapshot(cache) == want);
}

TEST(WriteSlotsIsa, SpecialValuesConvertAsDtypeHDoesAtEveryIsaLevel) {
  std::mt19937 rng(21);
  for (Isa isa : isa_levels()) {
    const IsaCapScope cap(isa);
    for (KVLayout layout : testing::kLayouts) {
      for (DType cd : {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFp8E4M3}) {
        for (DType in : testing::kInputDtypes) {
          for (int32_t dim : {24, 64, 128}) {
            for (float fp8_scale : {1.0f, 0.37f}) {
              if (cd != DType::kFp8E4M3 && fp8_scale != 1.0f) continue;
              SCOPED_TRACE(fmt::format("{} {} cache={} input={} dim={} scale={}", isa_name(isa),
                                       kv_layout_name(layout), dtype_name(cd), dtype_name(in), dim,
                                       fp8_scale));
              PagedKVCache cache(testing::small_metadata(layout, cd, 16, 8, 2, dim));
              if (cd == DType::kFp8E4M3) cache.set_fp8_scales(fp8_scale, 2.0f * fp8_scale);
              testing::fill_sentinel(cache, rng);
              const int64_t tokens = 40;
              const HostTokens key = tokens_from_bits(in, tokens, 2, dim, rng);
              const HostTokens value = tokens_from_bits(in, tokens, 2, dim, rng);
              std::vector<int64_t> slots(tokens);
              for (int64_t t = 0; t < tokens; ++t) slots[static_cast<size_t>(t)] = 3 * t + 1;
              expect_naive_bytes(cache, key, value, slots);
            }
          }
        }
      }
    }
  }
}

// int8 rows: rounding ties (amax 127 makes the codes x itself), mixed magnitudes, zero rows.
TEST(WriteSlotsIsa, Int8RowsRoundTiesToEvenAtEveryIsaLevel) {
  std::mt19937 rng(22);
  const int32_t dim = 64;
  const int64_t tokens = 12;
  for (Isa isa : isa_levels()) {
    const IsaCapScope cap(isa);
    for (KVLayout layout : testing::kLayouts) {
      for (DType in : testing::kInputDtypes) {
        SCOPED_TRACE(
            fmt::format("{} {} input={}", isa_name(isa), kv_layout_name(layout), dtype_name(in)));
        std::vector<float> k(static_cast<size_t>(tokens) * 2 * dim);
        std::normal_distribution<float> normal(0.0f, 5.0f);
        for (size_t i = 0; i < k.size(); ++i) {
          const size_t row = i / dim, d = i % dim;
          if (row % 3 == 0) {
            k[i] = d == 0 ? 127.0f : static_cast<float>(static_cast<int>(d) - 32) + 0.5f;
          } else {
            k[i] = row % 3 == 1 ? normal(rng) : 0.0f;
          }
        }
        HostTokens key{{}, DType::kFloat32, tokens, 2, dim};
        key.bytes.resize(4 * k.size());
        std::memcpy(key.bytes.data(), k.data(), key.bytes.size());
        if (in != DType::kFloat32) {  // exact in bfloat16 and float16 too
          HostTokens narrow{std::vector<uint8_t>(2 * k.size()), in, tokens, 2, dim};
          for (size_t i = 0; i < k.size(); ++i) {
            const uint16_t h = in == DType::kBFloat16 ? float_to_bf16(k[i]) : float_to_fp16(k[i]);
            std::memcpy(&narrow.bytes[2 * i], &h, 2);
          }
          key = narrow;
        }
        PagedKVCache cache(testing::small_metadata(layout, DType::kInt8, 16, 4, 2, dim));
        testing::fill_sentinel(cache, rng);
        std::vector<int64_t> slots(tokens);
        for (int64_t t = 0; t < tokens; ++t) slots[static_cast<size_t>(t)] = 40 - 3 * t;
        expect_naive_bytes(cache, key, key, slots);
      }
    }
  }
}

// A row whose max |x| is below 127 / FLT_MAX (its inverse scale overflows) keeps the codes the
// scalar path gives it: +-127 for nonzero elements, 0 for zeros, scale amax / 127.
TEST(WriteSlotsIsa, Int8RowsOfSubnormalsGetFullScaleCodesAtEveryIsaLevel) {
  const int32_t dim = 32;
  std::vector<float> row(dim, 0.0f);
  for (int32_t d = 0; d < dim; d += 3) {
    row[static_cast<size_t>(d)] = (d % 2 == 0 ? 1.0f : -1.0f) *
                                  std::numeric_limits<float>::denorm_min() *
                                  static_cast<float>(d + 1);
  }
  const float amax = std::numeric_limits<float>::denorm_min() * 31.0f;
  const ConstTokenTensor x{row.data(), DType::kFloat32, 1, 1, dim};
  const std::vector<int64_t> slot = {2};
  for (Isa isa : isa_levels()) {
    const IsaCapScope cap(isa);
    SCOPED_TRACE(isa_name(isa));
    PagedKVCache cache(testing::small_metadata(KVLayout::kNHD, DType::kInt8, 4, 2, 1, dim));
    write_slots(cache.view(0), x, x, slot);
    const auto* codes = static_cast<const int8_t*>(cache.kv_pages(0)) + 2 * 2 * dim;
    for (int32_t d = 0; d < dim; ++d) {
      const float v = row[static_cast<size_t>(d)];
      EXPECT_EQ(codes[d], v == 0.0f ? 0 : (v > 0.0f ? 127 : -127)) << d;
    }
    EXPECT_EQ(cache.k_scales(0)[2], amax / 127.0f);
  }
}

// Decode-shaped slot mappings (scattered slots) with 4 heads make kHND caches write blocks of
// tokens head by head; slots written twice keep the later token.
TEST(WriteSlotsIsa, ScatteredSlotsWithFourHeadsMatchTheNaiveWriterAtEveryIsaLevel) {
  std::mt19937 rng(23);
  for (Isa isa : isa_levels()) {
    const IsaCapScope cap(isa);
    for (KVLayout layout : testing::kLayouts) {
      for (DType cd : testing::kAllCacheDtypes) {
        SCOPED_TRACE(
            fmt::format("{} {} {}", isa_name(isa), kv_layout_name(layout), dtype_name(cd)));
        PagedKVCache cache(testing::small_metadata(layout, cd, 16, 12, 4, 64));
        testing::fill_sentinel(cache, rng);
        const int64_t tokens = 37;
        const DType in = cd == DType::kFloat16 ? DType::kFloat16 : DType::kFloat32;
        const HostTokens key = testing::random_tokens(rng, in, tokens, 4, 64);
        const HostTokens value = testing::random_tokens(rng, in, tokens, 4, 64);
        std::uniform_int_distribution<int64_t> pick(0, cache.num_slots() - 1);
        std::vector<int64_t> slots(tokens);
        for (auto& s : slots) s = pick(rng);
        slots[4] = -1;
        slots[30] = slots[2];  // a later token in another block rewrites the slot
        slots[9] = slots[8];   // and one in the same block
        expect_naive_bytes(cache, key, value, slots);
      }
    }
  }
}

// Writes of several MiB run on 2 and 3 threads, each taking a range of slots; slots written
// twice, far apart in the batch, keep the later token.
TEST(WriteSlotsThreads, SlotRangeSplitsWriteTheBytesOfTheNaiveWriter) {
  std::mt19937 rng(24);
  for (int threads : {2, 3}) {
    const ThreadsScope scope(threads);
    for (KVLayout layout : testing::kLayouts) {
      for (DType cd : {DType::kBFloat16, DType::kInt8, DType::kFloat32}) {
        for (bool scattered : {false, true}) {
          SCOPED_TRACE(fmt::format("threads={} {} {} scattered={}", threads, kv_layout_name(layout),
                                   dtype_name(cd), scattered));
          PagedKVCache cache(testing::small_metadata(layout, cd, 16, 160, 4, 64));
          testing::fill_sentinel(cache, rng);
          std::vector<int64_t> slots;
          std::uniform_int_distribution<int64_t> pick(0, cache.num_slots() - 17);
          while (slots.size() < 1500) {
            const int64_t s0 = pick(rng);
            const int64_t run = scattered ? 1 : 16;
            for (int64_t i = 0; i < run; ++i) slots.push_back(s0 + i);
          }
          slots[5] = -1;
          slots[1400] = slots[3];  // the later token wins, whichever thread owns the slot
          slots[1450] = slots[700];
          const auto tokens = static_cast<int64_t>(slots.size());
          const HostTokens key = testing::random_tokens(rng, DType::kFloat32, tokens, 4, 64);
          const HostTokens value = testing::random_tokens(rng, DType::kFloat32, tokens, 4, 64);
          expect_naive_bytes(cache, key, value, slots);
        }
      }
    }
  }
}

TEST(SlotRanges, BoundsAreAlignedOrderedAndBalancedWithinABucket) {
  std::mt19937 rng(25);
  std::uniform_int_distribution<int64_t> pick(1000, 50999);
  std::vector<int64_t> slots(20000);
  for (auto& s : slots) s = pick(rng);
  SlotRanges ranges(1000, 50999);
  for (int64_t s : slots) ranges.add(s, 1);
  for (int n : {1, 2, 3, 7}) {
    std::array<int64_t, 8> bounds{};
    ranges.cut(n, 16, std::span<int64_t>(bounds.data(), static_cast<size_t>(n) + 1));
    EXPECT_EQ(bounds[0], 0);
    EXPECT_EQ(bounds[static_cast<size_t>(n)], std::numeric_limits<int64_t>::max());
    for (int i = 1; i < n; ++i) {
      EXPECT_EQ(bounds[static_cast<size_t>(i)] % 16, 0);
      EXPECT_LE(bounds[static_cast<size_t>(i) - 1], bounds[static_cast<size_t>(i)]);
      const auto below = std::count_if(slots.begin(), slots.end(), [&](int64_t s) {
        return s < bounds[static_cast<size_t>(i)];
      });
      // One bucket (1/64 of the range, here about 313 slots) plus the alignment.
      EXPECT_NEAR(static_cast<double>(below), 20000.0 * i / n, 20000.0 / 64 + 16) << n << " " << i;
    }
  }
}

// A run added whole weighs on the same buckets as its slots added one by one, so one long run
// (a prefill into pages in order) still splits evenly.
TEST(SlotRanges, RunsWeighLikeTheirSlots) {
  std::mt19937 rng(26);
  std::uniform_int_distribution<int64_t> start(0, 9000), length(1, 700);
  SlotRanges by_run(0, 9999), by_slot(0, 9999);
  for (int i = 0; i < 50; ++i) {
    const int64_t s = start(rng), n = std::min<int64_t>(length(rng), 10000 - s);
    by_run.add_run(s, n);
    for (int64_t j = 0; j < n; ++j) by_slot.add(s + j, 1);
  }
  by_run.add_run(0, 10000);  // every bucket, edges included
  for (int64_t j = 0; j < 10000; ++j) by_slot.add(j, 1);
  for (int n : {2, 3, 7}) {
    std::array<int64_t, 8> a{}, b{};
    by_run.cut(n, 1, std::span<int64_t>(a.data(), static_cast<size_t>(n) + 1));
    by_slot.cut(n, 1, std::span<int64_t>(b.data(), static_cast<size_t>(n) + 1));
    EXPECT_EQ(a, b) << n;
  }
  SlotRanges one_run(5000, 7047);
  one_run.add_run(5000, 2048);
  std::array<int64_t, 3> bounds{};
  one_run.cut(2, 1, bounds);
  EXPECT_NEAR(static_cast<double>(bounds[1]), 5000 + 1024, 2048.0 / 64 + 1);
}

}  // namespace
}  // namespace pagedkv
