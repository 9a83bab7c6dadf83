// pagedkv/model/rope_params.h - the RoPE frequency scaling of a model (config.json's
// rope_scaling, rule 53), as RotaryEmbedding (rope.h) takes it.
//
// Example (Llama-3.1-8B):
//   pagedkv::RopeParams p{.type = pagedkv::RopeParams::Type::kLlama3, .factor = 8,
//                         .low_freq_factor = 1, .high_freq_factor = 4,
//                         .original_max_position_embeddings = 8192};
//
// Fields used by type: kNone none; kLinear factor; kLlama3 all four.
#pragma once

#include <cstdint>

namespace pagedkv {

struct RopeParams {
  enum class Type : uint8_t { kNone, kLinear, kLlama3 };
  Type type = Type::kNone;
  double factor = 1;                             // kLinear, kLlama3: > 0
  double low_freq_factor = 1;                    // kLlama3: > 0, < high_freq_factor
  double high_freq_factor = 4;                   // kLlama3
  int32_t original_max_position_embeddings = 0;  // kLlama3: > 0
};

}  // namespace pagedkv
