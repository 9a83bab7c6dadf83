// pagedkv/model/detokenize_stream.h - turns a request's output tokens into text one token at a
// time, for streaming: each push returns only the text that token completed.
//
// Example:
//   DetokenizeStream stream(tokenizer);
//   for (TokenId id : generated) send(stream.push(id));  // never half a UTF-8 character
//   send(stream.flush());                                // whatever was held back
//
// Invariants:
//   - The concatenation of every push and the final flush equals tokenizer.decode(all ids),
//     for tokenizers whose decode of a sequence starts with the decode of its prefix (byte
//     and SentencePiece do, with one token of context kept for SentencePiece's leading space).
//   - push never returns an incomplete UTF-8 sequence at its end, nor a trailing run of
//     U+FFFD (what SentencePiece's byte fallback gives for a partial character): both are held
//     until a later token completes them or flush gives them out as they are.
//   - Work per push is bounded by the tokens since the last complete character, not by the
//     whole output.
//   - The stream keeps a reference to the tokenizer, which must outlive it.
//
// Errors: push throws what tokenizer.decode throws (OutOfRange for a bad id) and then holds
// nothing of that id.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "pagedkv/model/tokenizer.h"

namespace pagedkv {

class DetokenizeStream {
 public:
  explicit DetokenizeStream(const Tokenizer& tokenizer);

  // The text completed by `id` (may be empty).
  std::string push(TokenId id);
  // The text still held back (possibly invalid UTF-8); the stream starts over afterwards.
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  std::vector<TokenId> window_;  // tokens whose text is not all given out, plus one of context
  std::size_t emitted_ = 0;      // bytes of decode(window_) already given out
};

}  // namespace pagedkv
