// The engine component: LLMEngine (vLLM's LLM-style generate plus the step-level API), its
// RequestOutput and EngineStats; score_tokens (every position's logits over a paged cache) and
// make_model (a random-weight model in Hugging Face layout). Registration only: validation and
// policy live in the C++ library.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "arguments.h"
#include "bindings.h"
#include "pagedkv/engine/llm_engine.h"
#include "pagedkv/model/model_maker.h"
#include "pagedkv/model/token_scorer.h"

namespace py = pybind11;

namespace pagedkv::python {
namespace {

using Prompt = std::variant<std::string, std::vector<TokenId>>;

// Per generated token, {token_id: logprob} (top-n plus the sampled token).
py::list logprob_dicts(const GenerationOutput& o) {
  py::list out;
  for (const auto& entry : o.logprobs) {
    py::dict d;
    for (const TokenLogprob& t : entry) d[py::int_(t.token)] = py::float_(t.logprob);
    out.append(d);
  }
  return out;
}

std::vector<TokenId> prompt_ids(const LLMEngine& e, const Prompt& p) {
  if (const auto* text = std::get_if<std::string>(&p)) return e.tokenizer().encode(*text);
  return std::get<std::vector<TokenId>>(p);
}

EngineConfig make_config(const std::string& model, const std::string& kv_cache_dtype,
                         std::optional<int64_t> num_pages, std::optional<int64_t> kv_cache_bytes,
                         int32_t page_size, int32_t max_num_seqs, int32_t max_num_batched_tokens,
                         std::optional<int32_t> max_model_len, bool enable_prefix_caching,
                         bool deterministic, int32_t num_threads) {
  EngineConfig c;
  c.model = model;
  c.kv_cache_dtype = parse_dtype(kv_cache_dtype);
  c.num_pages = num_pages;
  c.kv_cache_bytes = kv_cache_bytes;
  c.page_size = page_size;
  c.max_num_seqs = max_num_seqs;
  c.max_num_batched_tokens = max_num_batched_tokens;
  c.max_model_len = max_model_len;
  c.enable_prefix_caching = enable_prefix_caching;
  c.deterministic = deterministic;
  c.num_threads = num_threads;
  return c;
}

void bind_outputs(py::module_& m) {
  py::class_<GenerationOutput>(m, "RequestOutput",
                               "One request's result (vLLM's RequestOutput): prompt and "
                               "generated token ids, finish reason, per-token logprobs.")
      .def_readonly("request_id", &GenerationOutput::request_id, "str")
      .def_readonly("prompt_token_ids", &GenerationOutput::prompt_token_ids, "list[int]")
      .def_readonly("output_token_ids", &GenerationOutput::output_token_ids,
                    "list[int]: every token generated so far")
      .def_readonly("new_token_ids", &GenerationOutput::new_token_ids,
                    "list[int]: the tokens generated in this step")
      .def_readonly("finished", &GenerationOutput::finished, "bool")
      .def_property_readonly(
          "finish_reason", [](const GenerationOutput& o) { return reason_name(o.finish_reason); },
          "str | None: 'stop', 'length' or 'abort'")
      .def_readonly("stop_reason", &GenerationOutput::stop_reason,
                    "int | None: the stop token that finished it")
      .def_property_readonly(
          "logprobs",
          [](const GenerationOutput& o) -> py::object {
            if (o.logprobs.empty()) return py::none();
            return logprob_dicts(o);
          },
          "list[dict[int, float]] | None: per generated token, the top-n {token_id: logprob} "
          "(always including the sampled token); None without SamplingParams.logprobs")
      .def_property_readonly(
          "ttft",
          [](const GenerationOutput& o) {
            return o.metrics.first_token_time - o.metrics.arrival_time;
          },
          "float: seconds from add_request to the first token")
      .def_property_readonly(
          "num_cached_tokens",
          [](const GenerationOutput& o) { return o.metrics.num_cached_prompt_tokens; },
          "int: prompt tokens served from the prefix cache at admission")
      .def("__repr__", [](const GenerationOutput& o) {
        return fmt::format(
            "RequestOutput(request_id='{}', output_token_ids=[{}], finished={}, "
            "finish_reason={})",
            o.request_id, fmt::join(o.output_token_ids, ", "), o.finished ? "True" : "False",
            o.finish_reason ? finish_reason_name(*o.finish_reason) : "None");
      });

  py::class_<EngineStats>(m, "EngineStats", "Engine counters and the step-time split.")
      .def_readonly("num_steps", &EngineStats::num_steps, "int")
      .def_readonly("num_preemptions", &EngineStats::num_preemptions, "int")
      .def_readonly("num_computed_tokens", &EngineStats::num_computed_tokens,
                    "int: tokens run through the model")
      .def_readonly("num_generated_tokens", &EngineStats::num_generated_tokens, "int")
      .def_readonly("num_running", &EngineStats::num_running, "int")
      .def_readonly("num_waiting", &EngineStats::num_waiting, "int")
      .def_readonly("kv_cache_usage", &EngineStats::kv_cache_usage, "float in [0, 1]")
      .def_readonly("prefix_cache_queries", &EngineStats::prefix_cache_queries, "int: tokens")
      .def_readonly("prefix_cache_hits", &EngineStats::prefix_cache_hits, "int: tokens")
      .def_property_readonly("prefix_hit_rate", &EngineStats::prefix_hit_rate, "float")
      .def_readonly("schedule_seconds", &EngineStats::schedule_seconds, "float")
      .def_readonly("build_seconds", &EngineStats::build_seconds, "float")
      .def_readonly("forward_seconds", &EngineStats::forward_seconds, "float")
      .def_readonly("sample_seconds", &EngineStats::sample_seconds, "float")
      .def_readonly("update_seconds", &EngineStats::update_seconds, "float");
}

void bind_llm_engine(py::module_& m) {
  py::class_<LLMEngine>(m, "LLMEngine",
                        "A CPU inference engine over pagedkv's paged KV cache: scheduler, "
                        "batch builder, reference Llama/Qwen2 model and sampler.")
      .def(py::init([](const std::string& model, const std::string& kv_cache_dtype,
                       std::optional<int64_t> num_pages, std::optional<int64_t> kv_cache_bytes,
                       int32_t page_size, int32_t max_num_seqs, int32_t max_num_batched_tokens,
                       std::optional<int32_t> max_model_len, bool enable_prefix_caching,
                       bool deterministic, int32_t num_threads) {
             return std::make_unique<LLMEngine>(
                 make_config(model, kv_cache_dtype, num_pages, kv_cache_bytes, page_size,
                             max_num_seqs, max_num_batched_tokens, max_model_len,
                             enable_prefix_caching, deterministic, num_threads));
           }),
           py::arg("model"), py::arg("kv_cache_dtype") = "float32",
           py::arg("num_pages") = py::none(), py::arg("kv_cache_bytes") = py::none(),
           py::arg("page_size") = 16, py::arg("max_num_seqs") = 64,
           py::arg("max_num_batched_tokens") = 2048, py::arg("max_model_len") = py::none(),
           py::arg("enable_prefix_caching") = true, py::arg("deterministic") = true,
           py::arg("num_threads") = 0,
           "LLMEngine(model: str, kv_cache_dtype: str = 'float32', num_pages: int | None = "
           "None, kv_cache_bytes: int | None = None, page_size: int = 16, max_num_seqs: int = "
           "64, max_num_batched_tokens: int = 2048, max_model_len: int | None = None, "
           "enable_prefix_caching: bool = True, deterministic: bool = True, num_threads: int = "
           "0); ValueError naming a bad option, pagedkv.FormatError for bad model files")
      .def(
          "generate",
          [](LLMEngine& e, const std::vector<Prompt>& prompts, const SamplingParams& params) {
            std::vector<std::vector<TokenId>> ids;
            for (const Prompt& p : prompts) ids.push_back(prompt_ids(e, p));
            py::gil_scoped_release release;
            return e.generate(ids, params);
          },
          py::arg("prompts"), py::arg("params") = SamplingParams{},
          "generate(prompts: list[str | list[int]], params: SamplingParams = SamplingParams()) "
          "-> list[RequestOutput], in prompt order")
      .def(
          "add_request",
          [](LLMEngine& e, const std::string& id, const Prompt& prompt,
             const SamplingParams& params,
             int32_t priority) { e.add_request(id, prompt_ids(e, prompt), params, priority); },
          py::arg("request_id"), py::arg("prompt"), py::arg("params") = SamplingParams{},
          py::arg("priority") = 0,
          "add_request(request_id: str, prompt: str | list[int], params: SamplingParams = "
          "SamplingParams(), priority: int = 0); ValueError for a live id or a bad prompt")
      .def("abort_request", &LLMEngine::abort_request, py::arg("request_id"),
           "abort_request(request_id: str) -> bool: frees its pages at once; False if unknown")
      .def(
          "step",
          [](LLMEngine& e) {
            py::gil_scoped_release release;
            return e.step();
          },
          "step() -> list[RequestOutput]: one engine step; the requests that produced a token")
      .def("has_unfinished_requests", &LLMEngine::has_unfinished_requests,
           "has_unfinished_requests() -> bool")
      .def("stats", &LLMEngine::stats, "stats() -> EngineStats")
      .def("verify", &LLMEngine::verify,
           "verify(): checks every invariant (pages conserved); raises pagedkv.InternalError")
      .def(
          "encode",
          [](const LLMEngine& e, const std::string& text) { return e.tokenizer().encode(text); },
          py::arg("text"), "encode(text: str) -> list[int]: the model's tokenizer")
      .def(
          "decode",
          [](const LLMEngine& e, const std::vector<TokenId>& ids) {
            return py::bytes(e.tokenizer().decode(ids)).attr("decode")("utf-8", "replace");
          },
          py::arg("token_ids"), "decode(token_ids: list[int]) -> str")
      .def_property_readonly("num_pages", &LLMEngine::num_pages, "int: KV pool pages")
      .def_property_readonly("num_free_pages", &LLMEngine::num_free_pages, "int")
      .def_property_readonly("max_model_len", &LLMEngine::max_model_len, "int")
      .def_property_readonly(
          "vocab_size", [](const LLMEngine& e) { return e.model_config().vocab_size; }, "int");
}

void bind_model_tools(py::module_& m) {
  m.def(
      "make_model",
      [](const std::string& preset, const std::string& out_dir, uint64_t seed,
         const std::string& dtype) {
        make_model(preset_config(preset), seed, parse_dtype(dtype), out_dir);
      },
      py::arg("preset"), py::arg("out_dir"), py::arg("seed") = 0, py::arg("dtype") = "float32",
      "make_model(preset: str, out_dir: str, seed: int = 0, dtype: str = 'float32'): writes a "
      "deterministic random-weight model (config.json + model.safetensors); presets: tiny, "
      "tiny-qwen2, smollm-135m, llama-3.2-1b");
  m.def(
      "score_tokens",
      [](const std::string& model_dir, const std::vector<TokenId>& tokens, int32_t page_size,
         const std::string& kv_cache_dtype, int32_t chunk_size, uint64_t page_order_seed,
         bool deterministic) {
        ModelWeights w = ModelWeights::load(model_dir);
        LlamaModel model(w, deterministic ? MatmulMode::kDeterministic : MatmulMode::kFast);
        ScoreOptions o;
        o.page_size = page_size;
        o.kv_cache_dtype = parse_dtype(kv_cache_dtype);
        o.chunk_size = chunk_size;
        o.page_order_seed = page_order_seed;
        std::vector<float> logits;
        {
          py::gil_scoped_release release;
          logits = score_tokens(model, tokens, o);
        }
        const auto n = static_cast<py::ssize_t>(tokens.size());
        py::array_t<float> out({n, static_cast<py::ssize_t>(model.vocab_size())});
        std::copy(logits.begin(), logits.end(), out.mutable_data());
        return out;
      },
      py::arg("model_dir"), py::arg("token_ids"), py::arg("page_size") = 16,
      py::arg("kv_cache_dtype") = "float32", py::arg("chunk_size") = 0,
      py::arg("page_order_seed") = 0, py::arg("deterministic") = true,
      "score_tokens(model_dir: str, token_ids: list[int], page_size: int = 16, kv_cache_dtype: "
      "str = 'float32', chunk_size: int = 0, page_order_seed: int = 0, deterministic: bool = "
      "True) -> numpy.ndarray[float32] [n, vocab]: the logits of every position, prefilled in "
      "chunks over a paged cache whose pages are shuffled when page_order_seed != 0");
}

}  // namespace

void bind_engine(py::module_& m) {
  bind_outputs(m);
  bind_llm_engine(m);
  bind_model_tools(m);
}

}  // namespace pagedkv::python
