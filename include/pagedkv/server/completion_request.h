// pagedkv/server/completion_request.h - turns the JSON body of an OpenAI `POST /v1/completions`
// request into a validated plain struct, or into an OpenAI-style error naming the bad field.
// Pure functions: no engine, no HTTP; the server calls them on its HTTP threads.
//
// Example:
//   CompletionLimits limits{.served_model_name = "tiny", .max_model_len = 2048,
//                           .vocab_size = 384, .tokenizer = &engine.tokenizer()};
//   ParsedCompletion parsed = parse_completion_request(R"({"prompt": "Hi", "max_tokens": 8})",
//                                                      limits);
//   if (parsed.error) reply(parsed.error->status, parsed.error->to_json());
//   else run(parsed.request->prompt_token_ids, parsed.request->params);
//
// Accepted fields (null is the same as absent; unknown fields are ignored):
//   model (string; must be the served name), prompt (string | [int] | [string] | [[int]], one
//   prompt: a list of several prompts is refused, send one request per prompt), max_tokens (int
//   >= 1, default 16), temperature, top_p, top_k, seed, stop (string | [string], non-empty),
//   stop_token_ids ([int] in the vocabulary), ignore_eos, min_tokens, logprobs (int 0..20),
//   stream, stream_options.include_usage, priority, cache_salt, user, return_token_ids.
//   n (only 1), echo (only false), best_of (only 1) and suffix (only null) are refused
//   otherwise.
//
// Invariants of a returned request: prompt_token_ids is non-empty, every id is in
// [0, vocab_size), prompt length + max_tokens <= max_model_len, and params.validate() passes.
// Errors: exactly one of request / error is set; error->status is 400, error->param names the
// field (a dotted path for nested ones, e.g. "stream_options.include_usage"; null only for a
// body that is not a JSON object).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pagedkv/common/types.h"
#include "pagedkv/model/tokenizer.h"
#include "pagedkv/scheduler/sampling_params.h"

namespace pagedkv {

// An OpenAI error object: {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::optional<std::string> param;  // the offending field; null in the JSON when unset
  std::optional<std::string> code;

  nlohmann::json to_json() const;
  static ApiError invalid(std::string param, std::string message);
};

struct CompletionLimits {
  std::string served_model_name;
  int32_t max_model_len = 0;
  int32_t vocab_size = 0;
  const Tokenizer* tokenizer = nullptr;  // encodes string prompts; must be set for them
  int32_t max_logprobs = 20;
};

struct CompletionRequest {
  std::string model;  // the served name (filled in when the request omits it)
  std::vector<TokenId> prompt_token_ids;
  SamplingParams params;          // max_tokens, temperature, ..., logprobs
  std::vector<std::string> stop;  // stop strings: the text is cut before the first one found
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool return_token_ids = false;
  int32_t priority = 0;
  std::string cache_salt;  // empty: no salt
};

struct ParsedCompletion {
  std::optional<CompletionRequest> request;
  std::optional<ApiError> error;
};

// Parses and validates `body` (see the header comment for the fields and their limits).
ParsedCompletion parse_completion_request(std::string_view body, const CompletionLimits& limits);

}  // namespace pagedkv
