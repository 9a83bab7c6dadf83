// Philox4x32-10 and the per-request keys of the sampler (definitions in sampling_rng.h).
#include "pagedkv/engine/sampling_rng.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // key bumps (golden ratio, sqrt(3) - 1)
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

void philox_round(std::array<uint32_t, 4>& c, const std::array<uint32_t, 2>& k) {
  const uint64_t p0 = uint64_t{kPhiloxM0} * c[0];
  const uint64_t p1 = uint64_t{kPhiloxM1} * c[2];
  const auto hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
  const auto hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
  c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
}

}  // namespace

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter,
                                      std::array<uint32_t, 2> key) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += kPhiloxW0;
      key[1] += kPhiloxW1;
    }
    philox_round(counter, key);
  }
  return counter;
}

uint64_t request_sampling_key(std::string_view request_id, std::optional<int64_t> seed) {
  if (seed) {
    unsigned char bytes[8];
    const auto v = static_cast<uint64_t>(*seed);
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(v >> (8 * i));
    return XXH3_64bits_withSeed(bytes, sizeof(bytes), 1);
  }
  return XXH3_64bits_withSeed(request_id.data(), request_id.size(), 0);
}

double sampling_uniform(uint64_t key, int32_t output_index) {
  PAGEDKV_CHECK_ARG(output_index >= 0, "output_index must be >= 0, got {}", output_index);
  const std::array<uint32_t, 4> r =
      philox4x32_10({static_cast<uint32_t>(output_index), 0, 0, 0},
                    {static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32)});
  const uint64_t bits = ((uint64_t{r[0]} << 32) | r[1]) >> 11;
  return static_cast<double>(bits) * 0x1.0p-53;
}

}  // namespace pagedkv
