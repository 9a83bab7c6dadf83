// pagedkv/model/byte_tokenizer.h - the tokenizer of a model without a tokenizer file: each
// byte of the UTF-8 text is one token, and ids from 256 up are special.
//
// Example:
//   ByteTokenizer tok(/*vocab_size=*/512, /*bos=*/256, /*eos=*/257);
//   tok.encode("hé");                 // {104, 195, 169}: the bytes, no BOS
//   tok.decode({{256, 104, 300, 257}}); // "h<|300|>": BOS and EOS vanish, 300 is shown
//
// Invariants:
//   - ids 0-255 are the bytes 0x00-0xFF; encode yields only these, never BOS (the engine adds
//     it when configured), so decode(encode(text)) == text for any bytes.
//   - ids in [256, vocab_size) are special: BOS and EOS decode to nothing; every other one
//     decodes to the visible placeholder "<|id|>" (so a model sampling unused ids shows it).
//     encode does not parse placeholders back: "<|300|>" in a text is seven bytes.
//   - decode concatenates bytes as they are; a sequence cut inside a multibyte character gives
//     invalid UTF-8 (DetokenizeStream holds such tails back).
//
// Errors: InvalidArgument when vocab_size < 256 or bos/eos is not in [256, vocab_size);
// OutOfRange when decode sees an id outside [0, vocab_size).
#pragma once

#include <optional>

#include "pagedkv/model/tokenizer.h"

namespace pagedkv {

class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr int32_t kNumByteTokens = 256;

  ByteTokenizer(int32_t vocab_size, std::optional<TokenId> bos, std::optional<TokenId> eos);

  std::vector<TokenId> encode(std::string_view text) const override;
  std::string decode(std::span<const TokenId> ids) const override;
  int32_t vocab_size() const override { return vocab_size_; }
  std::optional<TokenId> bos_token_id() const override { return bos_; }
  std::optional<TokenId> eos_token_id() const override { return eos_; }

 private:
  int32_t vocab_size_;
  std::optional<TokenId> bos_;
  std::optional<TokenId> eos_;
};

}  // namespace pagedkv
