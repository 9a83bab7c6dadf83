// `pagedkv generate`: one prompt (text or token ids) through the engine; prints the completion,
// its token ids, the finish reason and, with --logprobs N, the top-N log-probabilities of every
// generated token; --json prints one JSON object instead.
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/engine/llm_engine.h"

namespace pagedkv::cli {

namespace {

std::vector<TokenId> parse_ids(const std::string& text) {
  std::vector<TokenId> ids;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      const long v = std::stol(item, &used);
      PAGEDKV_CHECK_ARG(used == item.size() && v >= 0 && v <= INT32_MAX,
                        "--prompt-ids: '{}' is not a token id (an integer >= 0)", item);
      ids.push_back(static_cast<TokenId>(v));
    } catch (const std::logic_error&) {
      throw InvalidArgument(fmt::format("--prompt-ids: '{}' is not a token id", item));
    }
  }
  PAGEDKV_CHECK_ARG(!ids.empty(), "--prompt-ids needs at least one id, got '{}'", text);
  return ids;
}

SamplingParams sampling_params(const GenerateArgs& a) {
  SamplingParams p;
  p.max_tokens = a.max_tokens;
  p.min_tokens = a.min_tokens;
  p.temperature = a.temperature;
  p.top_k = a.top_k;
  p.top_p = a.top_p;
  if (a.seed >= 0) p.seed = a.seed;
  p.ignore_eos = a.ignore_eos;
  p.stop_token_ids = a.stop_token_ids;
  if (a.logprobs > 0) p.logprobs = a.logprobs;
  return p;
}

}  // namespace

CLI::App* add_generate_command(CLI::App& app, GenerateArgs& a) {
  CLI::App* cmd = app.add_subcommand("generate", "Generate a completion of one prompt.");
  add_engine_options(*cmd, a.engine);
  auto* text =
      cmd->add_option("--prompt", a.prompt, "Prompt text (encoded by the model's tokenizer)");
  cmd->add_option("--prompt-ids", a.prompt_ids, "Prompt token ids, comma-separated")
      ->excludes(text);
  cmd->add_option("--max-tokens", a.max_tokens, "Tokens to generate at most")
      ->capture_default_str();
  cmd->add_option("--min-tokens", a.min_tokens, "EOS/stop tokens do not stop before this many");
  cmd->add_option("--temperature", a.temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", a.top_k, "Keep the k most likely tokens (0 = off)");
  cmd->add_option("--top-p", a.top_p, "Nucleus mass in (0, 1] (1 = off)");
  cmd->add_option("--seed", a.seed, "Sampling seed (default: from the request id)");
  cmd->add_flag("--ignore-eos", a.ignore_eos, "Do not stop at EOS");
  cmd->add_option("--stop-token-ids", a.stop_token_ids, "Token ids that stop generation")
      ->delimiter(',');
  cmd->add_option("--logprobs", a.logprobs, "Report the top-N log-probabilities per token");
  cmd->add_flag("--json", a.json, "Print one JSON object");
  return cmd;
}

int run_generate(const GenerateArgs& a) {
  PAGEDKV_CHECK_ARG(!a.prompt.empty() || !a.prompt_ids.empty(),
                    "give a prompt: --prompt TEXT or --prompt-ids 1,2,3");
  LLMEngine engine(engine_config(a.engine));
  const std::vector<TokenId> prompt =
      a.prompt_ids.empty() ? engine.tokenizer().encode(a.prompt) : parse_ids(a.prompt_ids);
  const double t0 = engine.now();
  GenerationOutput out = engine.generate({prompt}, sampling_params(a)).front();
  const double seconds = engine.now() - t0;
  const std::string text = engine.tokenizer().decode(out.output_token_ids);
  const char* reason = out.finish_reason ? finish_reason_name(*out.finish_reason).data() : "none";
  if (a.json) {
    nlohmann::json j;
    j["prompt_token_ids"] = out.prompt_token_ids;
    j["output_token_ids"] = out.output_token_ids;
    j["text"] = text;
    j["finish_reason"] = reason;
    j["ttft_seconds"] = out.metrics.first_token_time - out.metrics.arrival_time;
    j["seconds"] = seconds;
    if (!out.logprobs.empty()) {
      nlohmann::json lp = nlohmann::json::array();
      for (const auto& entry : out.logprobs) {
        nlohmann::json m = nlohmann::json::object();
        for (const TokenLogprob& t : entry) m[std::to_string(t.token)] = t.logprob;
        lp.push_back(m);
      }
      j["logprobs"] = lp;
    }
    fmt::print("{}\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    return 0;
  }
  fmt::print("{}\n", text);
  fmt::print(stderr, "prompt: {} tokens; generated {} tokens in {:.3f} s (finish: {})\n",
             out.prompt_token_ids.size(), out.output_token_ids.size(), seconds, reason);
  fmt::print(stderr, "token ids: {}\n", fmt::join(out.output_token_ids, ","));
  for (size_t i = 0; i < out.logprobs.size(); ++i) {
    std::vector<std::string> cells;
    for (const TokenLogprob& t : out.logprobs[i])
      cells.push_back(fmt::format("{}:{:.4f}", t.token, t.logprob));
    fmt::print(stderr, "  [{}] {} -> {}\n", i, out.output_token_ids[i], fmt::join(cells, " "));
  }
  return 0;
}

}  // namespace pagedkv::cli
