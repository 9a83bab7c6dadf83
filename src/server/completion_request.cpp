#include "pagedkv/server/completion_request.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <utility>

#include "pagedkv/common/errors.h"

namespace pagedkv {

using nlohmann::json;

json ApiError::to_json() const {
  json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (param) e["param"] = *param;
  if (code) e["code"] = *code;
  return json{{"error", e}};
}

ApiError ApiError::invalid(std::string param, std::string message) {
  ApiError e;
  e.message = std::move(message);
  e.param = std::move(param);
  return e;
}

namespace {

// Thrown inside the parser only, caught by parse_completion_request: one exit for every error.
struct FieldError {
  ApiError error;
};

[[noreturn]] void fail(const std::string& field, std::string message) {
  throw FieldError{ApiError::invalid(field, std::move(message))};
}

// The field's value, or nullptr when it is absent or null (the same thing to OpenAI clients).
const json* find(const json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

int64_t as_int(const json& v, const std::string& field, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) fail(field, fmt::format("'{}' must be an integer", field));
  const bool negative = v.is_number_unsigned() ? false : v.get<int64_t>() < 0;
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)) {
    fail(field, fmt::format("'{}' must be <= {}, got {}", field, hi, v.get<uint64_t>()));
  }
  const int64_t x = negative ? v.get<int64_t>() : static_cast<int64_t>(v.get<uint64_t>());
  if (x < lo || x > hi) {
    fail(field, fmt::format("'{}' must be in [{}, {}], got {}", field, lo, hi, x));
  }
  return x;
}

double as_number(const json& v, const std::string& field) {
  if (!v.is_number()) fail(field, fmt::format("'{}' must be a number", field));
  const double x = v.get<double>();
  if (!std::isfinite(x)) fail(field, fmt::format("'{}' must be finite", field));
  return x;
}

bool as_bool(const json& v, const std::string& field) {
  if (!v.is_boolean()) fail(field, fmt::format("'{}' must be a boolean", field));
  return v.get<bool>();
}

std::string as_string(const json& v, const std::string& field) {
  if (!v.is_string()) fail(field, fmt::format("'{}' must be a string", field));
  return v.get<std::string>();
}

std::vector<TokenId> token_list(const json& v, const std::string& field, int32_t vocab) {
  std::vector<TokenId> ids;
  ids.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string item = fmt::format("{}[{}]", field, i);
    if (!v[i].is_number_integer()) fail(field, fmt::format("'{}' must be a token id", item));
    const int64_t id = as_int(v[i], item, std::numeric_limits<int32_t>::min(),
                              std::numeric_limits<int32_t>::max());
    if (id < 0 || id >= vocab) {
      fail(field, fmt::format("'{}' = {} is outside the vocabulary [0, {})", item, id, vocab));
    }
    ids.push_back(static_cast<TokenId>(id));
  }
  return ids;
}

// prompt: a string, a token-id list, or a list holding exactly one of either.
std::vector<TokenId> parse_prompt(const json& body, const CompletionLimits& limits) {
  const json* p = find(body, "prompt");
  if (p == nullptr) fail("prompt", "'prompt' is required");
  const json* one = p;
  if (p->is_array() && !p->empty() && (p->front().is_string() || p->front().is_array())) {
    if (p->size() != 1) {
      fail("prompt", fmt::format("{} prompts in one request are not supported; send one "
                                 "request per prompt",
                                 p->size()));
    }
    one = &p->front();
  }
  std::vector<TokenId> ids;
  if (one->is_string()) {
    PAGEDKV_CHECK_ARG(limits.tokenizer != nullptr, "CompletionLimits.tokenizer is not set");
    ids = limits.tokenizer->encode(one->get_ref<const std::string&>());
  } else if (one->is_array()) {
    ids = token_list(*one, "prompt", limits.vocab_size);
  } else {
    fail("prompt", "'prompt' must be a string, a list of token ids, or a list of one of either");
  }
  if (ids.empty()) fail("prompt", "'prompt' must not be empty");
  if (static_cast<int64_t>(ids.size()) >= limits.max_model_len) {
    fail("prompt", fmt::format("the prompt has {} tokens; this model's maximum context length "
                               "is {} tokens (prompt and output)",
                               ids.size(), limits.max_model_len));
  }
  return ids;
}

std::vector<std::string> parse_stop(const json& body) {
  const json* s = find(body, "stop");
  if (s == nullptr) return {};
  std::vector<std::string> stop;
  if (s->is_string()) {
    stop.push_back(s->get<std::string>());
  } else if (s->is_array()) {
    for (const json& item : *s) stop.push_back(as_string(item, "stop"));
  } else {
    fail("stop", "'stop' must be a string or a list of strings");
  }
  for (const std::string& x : stop) {
    if (x.empty()) fail("stop", "'stop' strings must not be empty");
  }
  return stop;
}

// Options this server does not implement: refused unless given their neutral value.
void refuse_unsupported(const json& body) {
  if (const json* n = find(body, "n"); n && as_int(*n, "n", 1, 1 << 20) != 1) {
    fail("n", "'n' > 1 is not supported; send n requests (with different seeds)");
  }
  if (const json* b = find(body, "best_of"); b && as_int(*b, "best_of", 1, 1 << 20) != 1) {
    fail("best_of", "'best_of' > 1 is not supported");
  }
  if (const json* e = find(body, "echo"); e && as_bool(*e, "echo")) {
    fail("echo", "'echo' is not supported");
  }
  if (find(body, "suffix") != nullptr) fail("suffix", "'suffix' is not supported");
}

void parse_sampling(const json& body, const CompletionLimits& limits, SamplingParams& p) {
  constexpr int64_t kI32 = std::numeric_limits<int32_t>::max();
  if (const json* v = find(body, "max_tokens")) {
    p.max_tokens = static_cast<int32_t>(as_int(*v, "max_tokens", 1, kI32));
  }
  if (const json* v = find(body, "min_tokens")) {
    p.min_tokens = static_cast<int32_t>(as_int(*v, "min_tokens", 0, p.max_tokens));
  }
  if (const json* v = find(body, "temperature")) {
    const double t = as_number(*v, "temperature");
    if (t < 0) fail("temperature", fmt::format("'temperature' must be >= 0, got {}", t));
    p.temperature = static_cast<float>(t);
  }
  if (const json* v = find(body, "top_p")) {
    const double t = as_number(*v, "top_p");
    if (!(t > 0 && t <= 1)) fail("top_p", fmt::format("'top_p' must be in (0, 1], got {}", t));
    p.top_p = static_cast<float>(t);
  }
  if (const json* v = find(body, "top_k")) {
    p.top_k = static_cast<int32_t>(as_int(*v, "top_k", -1, kI32));
  }
  if (const json* v = find(body, "seed")) {
    p.seed = as_int(*v, "seed", std::numeric_limits<int64_t>::min(),
                    std::numeric_limits<int64_t>::max());
  }
  if (const json* v = find(body, "ignore_eos")) p.ignore_eos = as_bool(*v, "ignore_eos");
  if (const json* v = find(body, "stop_token_ids")) {
    if (!v->is_array()) fail("stop_token_ids", "'stop_token_ids' must be a list of token ids");
    p.stop_token_ids = token_list(*v, "stop_token_ids", limits.vocab_size);
  }
  if (const json* v = find(body, "logprobs")) {
    p.logprobs = static_cast<int32_t>(as_int(*v, "logprobs", 0, limits.max_logprobs));
  }
}

CompletionRequest parse_fields(const json& body, const CompletionLimits& limits) {
  CompletionRequest r;
  r.model = limits.served_model_name;
  if (const json* m = find(body, "model")) {
    r.model = as_string(*m, "model");
    if (r.model != limits.served_model_name) {
      ApiError e = ApiError::invalid(
          "model", fmt::format("the model '{}' does not exist; this server serves '{}'", r.model,
                               limits.served_model_name));
      e.code = "model_not_found";
      throw FieldError{e};
    }
  }
  refuse_unsupported(body);
  parse_sampling(body, limits, r.params);
  r.prompt_token_ids = parse_prompt(body, limits);
  const int64_t total = static_cast<int64_t>(r.prompt_token_ids.size()) + r.params.max_tokens;
  if (total > limits.max_model_len) {
    fail("max_tokens",
         fmt::format("this model's maximum context length is {} tokens; the "
                     "request asks for {} ({} in the prompt, 'max_tokens' {})",
                     limits.max_model_len, total, r.prompt_token_ids.size(), r.params.max_tokens));
  }
  r.stop = parse_stop(body);
  if (const json* v = find(body, "stream")) r.stream = as_bool(*v, "stream");
  if (const json* so = find(body, "stream_options")) {
    if (!so->is_object()) fail("stream_options", "'stream_options' must be an object");
    if (const json* u = find(*so, "include_usage")) {
      r.include_usage = as_bool(*u, "stream_options.include_usage");
    }
  }
  if (const json* v = find(body, "return_token_ids")) {
    r.return_token_ids = as_bool(*v, "return_token_ids");
  }
  if (const json* v = find(body, "priority")) {
    r.priority = static_cast<int32_t>(as_int(*v, "priority", std::numeric_limits<int32_t>::min(),
                                             std::numeric_limits<int32_t>::max()));
  }
  if (const json* v = find(body, "cache_salt")) r.cache_salt = as_string(*v, "cache_salt");
  if (const json* v = find(body, "user")) as_string(*v, "user");  // accepted, not used
  try {
    r.params.validate();
  } catch (const InvalidArgument& e) {
    fail("params", e.what());  // unreachable when the checks above are complete
  }
  return r;
}

}  // namespace

ParsedCompletion parse_completion_request(std::string_view body, const CompletionLimits& limits) {
  ParsedCompletion out;
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    ApiError e;
    e.message = "the request body is not valid JSON";
    out.error = e;
    return out;
  }
  if (!doc.is_object()) {
    ApiError e;
    e.message = "the request body must be a JSON object";
    out.error = e;
    return out;
  }
  try {
    out.request = parse_fields(doc, limits);
  } catch (const FieldError& e) {
    out.error = e.error;
  }
  return out;
}

}  // namespace pagedkv
