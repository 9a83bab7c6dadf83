// pagedkv/server/completion_response.h - the JSON an OpenAI completions client reads: the whole
// response, the streaming chunks (server-sent events) and the logprobs object. Pure functions.
//
// Example:
//   CompletionHeader h{.id = "cmpl-1", .created = 1700000000, .model = "tiny"};
//   CompletionChoice c{.text = "Hello", .finish_reason = "length"};
//   json body = completion_response(h, c, usage_json(3, 5));
//   // {"id": "cmpl-1", "object": "text_completion", "created": ..., "model": "tiny",
//   //  "choices": [{"index": 0, "text": "Hello", "logprobs": null, "finish_reason": "length"}],
//   //  "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}
//   std::string event = sse(completion_chunk(h, c));   // "data: {...}\n\n"
//
// Invariants: token_ids / prompt_token_ids (vLLM's return_token_ids extension) appear on the
// choice only when set; logprobs is null unless entries were given (or with_logprobs is set);
// text that is not valid UTF-8 is sent with U+FFFD in place of the bad bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pagedkv/common/types.h"
#include "pagedkv/server/completion_text.h"

namespace pagedkv {

struct CompletionHeader {
  std::string id;
  int64_t created = 0;  // Unix seconds
  std::string model;
};

struct CompletionChoice {
  std::string text;
  bool with_logprobs = false;
  std::vector<LogprobEntry> logprobs;
  std::optional<std::string> finish_reason;  // null while streaming
  std::optional<std::vector<TokenId>> token_ids;
  std::optional<std::vector<TokenId>> prompt_token_ids;
};

// OpenAI's completions logprobs: {tokens, token_logprobs, top_logprobs, text_offset}.
nlohmann::json logprobs_json(const std::vector<LogprobEntry>& entries);
nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);
nlohmann::json choice_json(const CompletionChoice& choice);
// The non-streaming response (usage always present).
nlohmann::json completion_response(const CompletionHeader& h, const CompletionChoice& choice,
                                   nlohmann::json usage);
// One streaming chunk; `usage` null in every chunk but the usage chunk.
nlohmann::json completion_chunk(const CompletionHeader& h, const CompletionChoice& choice,
                                nlohmann::json usage = nullptr);
// The final usage chunk of stream_options.include_usage: no choices, usage set.
nlohmann::json usage_chunk(const CompletionHeader& h, nlohmann::json usage);
// "data: <json>\n\n"; invalid UTF-8 replaced.
std::string sse(const nlohmann::json& j);
// j.dump() with invalid UTF-8 replaced.
std::string dump_json(const nlohmann::json& j);

}  // namespace pagedkv
