#include "pagedkv/server/completion_response.h"

#include <utility>

namespace pagedkv {

using nlohmann::json;

json logprobs_json(const std::vector<LogprobEntry>& entries) {
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(),
       offsets = json::array();
  for (const LogprobEntry& e : entries) {
    tokens.push_back(e.token);
    token_logprobs.push_back(e.logprob);
    json t = json::object();
    // Tokens with the same text keep the first (the best) logprob.
    for (const auto& [text, lp] : e.top) {
      if (!t.contains(text)) t[text] = lp;
    }
    top.push_back(std::move(t));
    offsets.push_back(e.text_offset);
  }
  return json{{"tokens", std::move(tokens)},
              {"token_logprobs", std::move(token_logprobs)},
              {"top_logprobs", std::move(top)},
              {"text_offset", std::move(offsets)}};
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return json{{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens}};
}

json choice_json(const CompletionChoice& c) {
  json j = {{"index", 0}, {"text", c.text}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
  if (c.with_logprobs || !c.logprobs.empty()) j["logprobs"] = logprobs_json(c.logprobs);
  if (c.finish_reason) j["finish_reason"] = *c.finish_reason;
  if (c.token_ids) j["token_ids"] = *c.token_ids;
  if (c.prompt_token_ids) j["prompt_token_ids"] = *c.prompt_token_ids;
  return j;
}

namespace {
json header_json(const CompletionHeader& h) {
  return json{
      {"id", h.id}, {"object", "text_completion"}, {"created", h.created}, {"model", h.model}};
}
}  // namespace

json completion_response(const CompletionHeader& h, const CompletionChoice& choice, json usage) {
  json j = header_json(h);
  j["choices"] = json::array({choice_json(choice)});
  j["usage"] = std::move(usage);
  return j;
}

json completion_chunk(const CompletionHeader& h, const CompletionChoice& choice, json usage) {
  json j = header_json(h);
  j["choices"] = json::array({choice_json(choice)});
  j["usage"] = std::move(usage);
  return j;
}

json usage_chunk(const CompletionHeader& h, json usage) {
  json j = header_json(h);
  j["choices"] = json::array();
  j["usage"] = std::move(usage);
  return j;
}

std::string dump_json(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string sse(const json& j) { return "data: " + dump_json(j) + "\n\n"; }

}  // namespace pagedkv
