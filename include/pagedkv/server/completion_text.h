// pagedkv/server/completion_text.h - one completion's text as its tokens arrive: detokenizes
// them incrementally, finds stop strings (cutting the text before the first one), holds back
// text that may still become a stop string, and builds the OpenAI logprobs entries.
//
// Example:
//   CompletionText text(tokenizer, {"\n\n"}, /*with_logprobs=*/false);
//   for (const GenerationOutput& out : engine.step()) {
//     CompletionText::Delta d = text.push(out.new_token_ids, out.logprobs, out.finished);
//     send(d.text);                      // never part of a stop string, never half a character
//     if (d.stopped) engine.abort_request(out.request_id);  // finish_reason "stop"
//   }
//
// Invariants:
//   - The concatenation of every delta's text is the tokenizer's decode of the tokens pushed
//     (minus a skipped final token), cut before the first occurrence of any stop string.
//   - Once a delta reports stopped, later pushes return nothing.
//   - Each logprobs entry's text_offset is the byte offset of its token's text in that
//     concatenation (uncut), so offsets never decrease.
// Errors: push throws what Tokenizer::decode throws (OutOfRange) for an id outside the
// vocabulary.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/engine/sampler.h"
#include "pagedkv/model/detokenize_stream.h"
#include "pagedkv/model/tokenizer.h"

namespace pagedkv {

// One generated token in OpenAI's completions logprobs object.
struct LogprobEntry {
  std::string token;                               // the token's own text
  float logprob = 0.0f;                            // of the sampled token
  std::vector<std::pair<std::string, float>> top;  // top-n {text, logprob}, best first
  int64_t text_offset = 0;
};

class CompletionText {
 public:
  struct Delta {
    std::string text;
    std::vector<LogprobEntry> logprobs;  // one per pushed token when logprobs are on
    bool stopped = false;                // a stop string was found in this push
  };

  CompletionText(const Tokenizer& tokenizer, std::vector<std::string> stop, bool with_logprobs);

  // ids [n] the step's new tokens; logprobs [n] (or empty when logprobs are off). `finished`:
  // these are the request's last tokens, so nothing is held back; `skip_last_text`: the last
  // id's text is left out (a stop token id ends the output without showing it).
  Delta push(std::span<const TokenId> ids, std::span<const std::vector<TokenLogprob>> logprobs,
             bool finished, bool skip_last_text = false);

  bool stopped() const { return stopped_; }
  int32_t num_tokens() const { return num_tokens_; }

 private:
  LogprobEntry make_entry(TokenId id, std::span<const TokenLogprob> top) const;
  // Searches the stop strings in text_ from `from`; true (and text_ cut) when one is found.
  bool cut_at_stop(size_t from);
  size_t held_back() const;  // bytes at the end of text_ that start some stop string

  const Tokenizer* tokenizer_;
  DetokenizeStream stream_;
  std::vector<std::string> stop_;
  size_t max_stop_ = 0;
  bool with_logprobs_;
  std::string text_;    // the text so far (cut at a found stop string)
  size_t sent_ = 0;     // bytes of text_ already returned
  int64_t offset_ = 0;  // uncut bytes so far (text offsets)
  bool stopped_ = false;
  int32_t num_tokens_ = 0;
};

}  // namespace pagedkv
