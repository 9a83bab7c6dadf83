// The scheduler component: SchedulerConfig, SamplingParams, Scheduler, its outputs
// (SchedulerOutput, NewRequestData, CachedRequestData, EngineCoreOutput), Sequence snapshots and
// SchedulerStats. Registration only: validation and policy live in the C++ library. Names
// follow vLLM's (req_id, num_scheduled_tokens, ...); page ids cross as lists per group, enums
// as their names ("fcfs", "running", "stop", ...).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "arguments.h"
#include "bindings.h"
#include "pagedkv/hash/request.h"
#include "pagedkv/manager/kv_cache_manager.h"
#include "pagedkv/scheduler/sampling_params.h"
#include "pagedkv/scheduler/scheduler.h"
#include "pagedkv/scheduler/scheduler_config.h"
#include "pagedkv/scheduler/scheduler_output.h"
#include "pagedkv/scheduler/sequence.h"

namespace py = pybind11;

namespace pagedkv::python {
namespace {

const char* py_bool(bool b) { return b ? "True" : "False"; }

void bind_config(py::module_& m) {
  py::class_<SchedulerConfig>(m, "SchedulerConfig",
                              "The scheduler's limits and policy (rule 45 is checked on "
                              "construction and by validate(): ValueError naming the field).")
      .def(py::init([](int32_t max_num_seqs, int32_t max_num_batched_tokens, int32_t max_model_len,
                       bool enable_chunked_prefill, int32_t long_prefill_token_threshold,
                       const std::string& policy, bool reserve_full_prompt) {
             SchedulerConfig c;
             c.max_num_seqs = max_num_seqs;
             c.max_num_batched_tokens = max_num_batched_tokens;
             c.max_model_len = max_model_len;
             c.enable_chunked_prefill = enable_chunked_prefill;
             c.long_prefill_token_threshold = long_prefill_token_threshold;
             c.policy = parse_scheduling_policy(policy);
             c.reserve_full_prompt = reserve_full_prompt;
             c.validate();
             return c;
           }),
           py::arg("max_num_seqs") = 128, py::arg("max_num_batched_tokens") = 2048,
           py::arg("max_model_len"), py::arg("enable_chunked_prefill") = true,
           py::arg("long_prefill_token_threshold") = 0, py::arg("policy") = "fcfs",
           py::arg("reserve_full_prompt") = true,
           "SchedulerConfig(max_num_seqs: int = 128, max_num_batched_tokens: int = 2048, "
           "max_model_len: int (required), enable_chunked_prefill: bool = True, "
           "long_prefill_token_threshold: int = 0 (off), policy: str = 'fcfs' | 'priority', "
           "reserve_full_prompt: bool = True (rule 39 a))")
      .def_readwrite("max_num_seqs", &SchedulerConfig::max_num_seqs,
                     "int: running requests at most")
      .def_readwrite("max_num_batched_tokens", &SchedulerConfig::max_num_batched_tokens,
                     "int: tokens scheduled in one step at most")
      .def_readwrite("max_model_len", &SchedulerConfig::max_model_len,
                     "int: tokens per request; equals the KVCacheManager's")
      .def_readwrite("enable_chunked_prefill", &SchedulerConfig::enable_chunked_prefill,
                     "bool: split prompts over the budget left (rule 38)")
      .def_readwrite("long_prefill_token_threshold", &SchedulerConfig::long_prefill_token_threshold,
                     "int: cap on a request's tokens per step (0 = off)")
      .def_property(
          "policy",
          [](const SchedulerConfig& c) { return std::string(scheduling_policy_name(c.policy)); },
          [](SchedulerConfig& c, const std::string& p) { c.policy = parse_scheduling_policy(p); },
          "str: 'fcfs' or 'priority'")
      .def_readwrite("reserve_full_prompt", &SchedulerConfig::reserve_full_prompt,
                     "bool: admit only when the whole sequence fits (rule 39 a)")
      .def("validate", &SchedulerConfig::validate,
           "validate() -> None: raises ValueError naming the first bad field")
      .def("__repr__", [](const SchedulerConfig& c) {
        return fmt::format(
            "SchedulerConfig(max_num_seqs={}, max_num_batched_tokens={}, max_model_len={}, "
            "enable_chunked_prefill={}, long_prefill_token_threshold={}, policy='{}', "
            "reserve_full_prompt={})",
            c.max_num_seqs, c.max_num_batched_tokens, c.max_model_len,
            py_bool(c.enable_chunked_prefill), c.long_prefill_token_threshold,
            scheduling_policy_name(c.policy), py_bool(c.reserve_full_prompt));
      });
}

void bind_sampling_params(py::module_& m) {
  py::class_<SamplingParams>(m, "SamplingParams",
                             "How one request generates (vLLM's SamplingParams): max_tokens, "
                             "min_tokens, ignore_eos and stop_token_ids are read by the "
                             "scheduler; temperature, top_k, top_p, seed and logprobs by the "
                             "engine's sampler.")
      .def(py::init([](int32_t max_tokens, int32_t min_tokens, bool ignore_eos,
                       std::vector<TokenId> stop_token_ids, float temperature, int32_t top_k,
                       float top_p, std::optional<int64_t> seed, std::optional<int32_t> logprobs) {
             SamplingParams p;
             p.max_tokens = max_tokens;
             p.min_tokens = min_tokens;
             p.ignore_eos = ignore_eos;
             p.stop_token_ids = std::move(stop_token_ids);
             p.temperature = temperature;
             p.top_k = top_k;
             p.top_p = top_p;
             p.seed = seed;
             p.logprobs = logprobs;
             p.validate();
             return p;
           }),
           py::arg("max_tokens") = 16, py::arg("min_tokens") = 0, py::arg("ignore_eos") = false,
           py::arg("stop_token_ids") = std::vector<TokenId>{}, py::arg("temperature") = 1.0f,
           py::arg("top_k") = 0, py::arg("top_p") = 1.0f, py::arg("seed") = py::none(),
           py::arg("logprobs") = py::none(),
           "SamplingParams(max_tokens: int = 16, min_tokens: int = 0, ignore_eos: bool = False, "
           "stop_token_ids: list[int] = [], temperature: float = 1.0, top_k: int = 0, "
           "top_p: float = 1.0, seed: int | None = None, logprobs: int | None = None); "
           "raises ValueError naming a bad field")
      .def_readwrite("max_tokens", &SamplingParams::max_tokens, "int: output tokens at most")
      .def_readwrite("min_tokens", &SamplingParams::min_tokens,
                     "int: EOS and stop tokens do not stop before this many outputs")
      .def_readwrite("ignore_eos", &SamplingParams::ignore_eos, "bool: EOS does not stop")
      .def_readwrite("stop_token_ids", &SamplingParams::stop_token_ids,
                     "list[int]: tokens that stop the request (kept in its output)")
      .def_readwrite("temperature", &SamplingParams::temperature, "float: 0 = greedy")
      .def_readwrite("top_k", &SamplingParams::top_k, "int: 0 or -1 = off")
      .def_readwrite("top_p", &SamplingParams::top_p, "float: in (0, 1]")
      .def_readwrite("seed", &SamplingParams::seed, "int | None: the sampler's seed")
      .def_readwrite("logprobs", &SamplingParams::logprobs,
                     "int | None: log-probabilities of this many top tokens")
      .def("validate", &SamplingParams::validate,
           "validate() -> None: raises ValueError naming the first bad field")
      .def("__repr__", [](const SamplingParams& p) {
        return fmt::format(
            "SamplingParams(max_tokens={}, min_tokens={}, ignore_eos={}, "
            "stop_token_ids={}, temperature={}, top_k={}, top_p={})",
            p.max_tokens, p.min_tokens, py_bool(p.ignore_eos),
            py::repr(py::cast(p.stop_token_ids)).cast<std::string>(), p.temperature, p.top_k,
            p.top_p);
      });
}

void bind_outputs(py::module_& m) {
  py::class_<NewRequestData>(m, "NewRequestData",
                             "A request scheduled for the first time: req_id, prompt_token_ids, "
                             "page_ids (all its pages, per group), num_computed_tokens (its "
                             "prefix hit).")
      .def_readonly("req_id", &NewRequestData::request_id, "str")
      .def_readonly("prompt_token_ids", &NewRequestData::prompt_token_ids, "list[int]")
      .def_readonly("page_ids", &NewRequestData::page_ids,
                    "list[list[int]]: per group, every page of the request")
      .def_readonly("num_computed_tokens", &NewRequestData::num_computed_tokens,
                    "int: tokens already computed before this step (the prefix hit)")
      .def("__repr__", [](const NewRequestData& d) {
        return fmt::format(
            "NewRequestData(req_id='{}', prompt_len={}, page_ids={}, "
            "num_computed_tokens={})",
            d.request_id, d.prompt_token_ids.size(),
            py::repr(py::cast(d.page_ids)).cast<std::string>(), d.num_computed_tokens);
      });

  py::class_<CachedRequestData>(m, "CachedRequestData",
                                "Requests scheduled before (running) or resumed after a "
                                "preemption, one entry per request in output order.")
      .def_readonly("req_ids", &CachedRequestData::request_ids, "list[str]")
      .def_property_readonly(
          "resumed_req_ids",
          [](const CachedRequestData& c) {
            py::set out;
            for (size_t i = 0; i < c.request_ids.size(); ++i) {
              if (c.resumed[i]) out.add(py::str(c.request_ids[i]));
            }
            return out;
          },
          "set[str]: the requests resumed in this step (they list all their pages)")
      .def_property_readonly(
          "resumed",
          [](const CachedRequestData& c) {
            return std::vector<bool>(c.resumed.begin(), c.resumed.end());
          },
          "list[bool]: per request, whether it was resumed in this step")
      .def_readonly("new_page_ids", &CachedRequestData::new_page_ids,
                    "list[list[list[int]] | None]: per request, per group: all pages of a "
                    "resumed request, the pages added in this step for a running one, None "
                    "when it got none")
      .def_readonly("num_computed_tokens", &CachedRequestData::num_computed_tokens,
                    "list[int]: per request, computed tokens before this step")
      .def("__len__", &CachedRequestData::size, "__len__() -> int: requests listed")
      .def("__repr__", [](const CachedRequestData& c) {
        return fmt::format("CachedRequestData(req_ids={})",
                           py::repr(py::cast(c.request_ids)).cast<std::string>());
      });

  py::class_<SchedulerOutput>(m, "SchedulerOutput",
                              "What one schedule() step hands the model step. Token counts "
                              "are the values before the step.")
      .def_readonly("step", &SchedulerOutput::step, "int: which schedule() call (1-based)")
      .def_readonly("scheduled_new_reqs", &SchedulerOutput::scheduled_new_reqs,
                    "list[NewRequestData]: requests scheduled for the first time")
      .def_readonly("scheduled_cached_reqs", &SchedulerOutput::scheduled_cached_reqs,
                    "CachedRequestData: running and resumed requests")
      .def_property_readonly(
          "num_scheduled_tokens",
          [](const SchedulerOutput& o) {
            py::dict out;
            for (const auto& [id, n] : o.num_scheduled_tokens) out[py::str(id)] = n;
            return out;
          },
          "dict[str, int]: tokens per request, in output order (running pass first, then "
          "admissions: rule 41)")
      .def_readonly("total_num_scheduled_tokens", &SchedulerOutput::total_num_scheduled_tokens,
                    "int")
      .def_readonly("preempted_req_ids", &SchedulerOutput::preempted_req_ids,
                    "list[str]: preempted in this step, in preemption order")
      .def_readonly("finished_req_ids", &SchedulerOutput::finished_req_ids,
                    "list[str]: finished or aborted since the previous step")
      .def("__repr__", [](const SchedulerOutput& o) {
        return fmt::format(
            "SchedulerOutput(step={}, requests={}, total_num_scheduled_tokens={}, "
            "preempted={}, finished={})",
            o.step, o.num_scheduled_tokens.size(), o.total_num_scheduled_tokens,
            o.preempted_req_ids.size(), o.finished_req_ids.size());
      });

  py::class_<RequestOutput>(m, "EngineCoreOutput",
                            "What update_from_output reports for a request that produced a "
                            "token.")
      .def_readonly("request_id", &RequestOutput::request_id, "str")
      .def_readonly("new_token_ids", &RequestOutput::new_token_ids, "list[int]")
      .def_readonly("finished", &RequestOutput::finished, "bool")
      .def_property_readonly(
          "finish_reason", [](const RequestOutput& r) { return reason_name(r.finish_reason); },
          "str | None: 'stop', 'length' or None")
      .def_readonly("stop_reason", &RequestOutput::stop_reason,
                    "int | None: the stop token that finished the request")
      .def("__repr__", [](const RequestOutput& r) {
        return fmt::format(
            "EngineCoreOutput(request_id='{}', new_token_ids={}, finished={}, "
            "finish_reason={})",
            r.request_id, py::repr(py::cast(r.new_token_ids)).cast<std::string>(),
            py_bool(r.finished),
            py::repr(py::cast(reason_name(r.finish_reason))).cast<std::string>());
      });
}

void bind_sequence(py::module_& m) {
  py::class_<Sequence>(m, "Sequence",
                       "A snapshot (copy) of one request's scheduling state, from "
                       "Scheduler.get_sequence; it does not change afterwards.")
      .def_property_readonly("request_id", &Sequence::request_id, "str")
      .def_property_readonly(
          "status", [](const Sequence& s) { return std::string(sequence_status_name(s.status())); },
          "str: 'waiting', 'running', 'preempted' (or a finished state)")
      .def_property_readonly("priority", &Sequence::priority, "int: lower is more urgent")
      .def_property_readonly("arrival_time", &Sequence::arrival_time, "float")
      .def_property_readonly("num_preemptions", &Sequence::num_preemptions, "int")
      .def_property_readonly("num_tokens", &Sequence::num_tokens, "int: prompt + outputs")
      .def_property_readonly("num_prompt_tokens", &Sequence::num_prompt_tokens, "int")
      .def_property_readonly("num_output_tokens", &Sequence::num_output_tokens, "int")
      .def_property_readonly("num_computed_tokens", &Sequence::num_computed_tokens, "int")
      .def_property_readonly(
          "output_token_ids",
          [](const Sequence& s) {
            const auto all = s.request().all_token_ids();
            return std::vector<TokenId>(all.begin() + s.num_prompt_tokens(), all.end());
          },
          "list[int]")
      .def_property_readonly(
          "all_token_ids",
          [](const Sequence& s) {
            const auto all = s.request().all_token_ids();
            return std::vector<TokenId>(all.begin(), all.end());
          },
          "list[int]: prompt then outputs")
      .def_property_readonly("page_ids", &Sequence::page_ids,
                             "list[list[int]]: per group, the pages the outputs announced")
      .def_property_readonly("sampling_params", &Sequence::sampling_params, "SamplingParams")
      .def_property_readonly("eos_token_id", &Sequence::eos_token_id, "int | None")
      .def_property_readonly(
          "finish_reason", [](const Sequence& s) { return reason_name(s.finish_reason()); },
          "str | None")
      .def("__repr__", [](const Sequence& s) {
        return fmt::format(
            "Sequence(request_id='{}', status='{}', num_tokens={}, "
            "num_computed_tokens={})",
            s.request_id(), sequence_status_name(s.status()), s.num_tokens(),
            s.num_computed_tokens());
      });

  py::class_<SchedulerStats>(m, "SchedulerStats", "Counters of a Scheduler (a snapshot).")
      .def_readonly("num_steps", &SchedulerStats::num_steps, "int: schedule() calls")
      .def_readonly("num_preemptions", &SchedulerStats::num_preemptions, "int")
      .def_readonly("num_running", &SchedulerStats::num_running, "int")
      .def_readonly("num_waiting", &SchedulerStats::num_waiting, "int")
      .def_readonly("kv_cache_usage", &SchedulerStats::kv_cache_usage,
                    "float: held usable pages / usable pages")
      .def_readonly("prefix_cache_stats", &SchedulerStats::prefix_cache,
                    "PrefixCacheStats: lookups of admitted requests only (rule 46)")
      .def("__repr__", [](const SchedulerStats& s) {
        return fmt::format(
            "SchedulerStats(num_steps={}, num_preemptions={}, num_running={}, "
            "num_waiting={}, kv_cache_usage={:.4f})",
            s.num_steps, s.num_preemptions, s.num_running, s.num_waiting, s.kv_cache_usage);
      });
}

std::vector<std::string> ids_of(const std::vector<const Sequence*>& seqs) {
  std::vector<std::string> out;
  out.reserve(seqs.size());
  for (const Sequence* s : seqs) out.push_back(s->request_id());
  return out;
}

void bind_scheduler_class(py::module_& m) {
  using SampledById = std::unordered_map<std::string, std::vector<TokenId>>;
  using SampledInOrder = std::vector<std::vector<TokenId>>;
  py::class_<Scheduler>(m, "Scheduler",
                        "vLLM v1's synchronous scheduler over one KVCacheManager (rules 34-46). "
                        "Keeps the manager alive; must be its only client.")
      .def(py::init<SchedulerConfig, KVCacheManager&>(), py::arg("config"),
           py::arg("kv_cache_manager"), py::keep_alive<1, 3>(),
           "Scheduler(config: SchedulerConfig, kv_cache_manager: KVCacheManager); ValueError "
           "unless config.max_model_len equals the manager's, RuntimeError if the manager "
           "holds requests")
      .def_property_readonly(
          "config", [](const Scheduler& s) { return s.config(); }, "SchedulerConfig (a copy)")
      .def_property_readonly("max_num_tokens", &Scheduler::max_num_tokens,
                             "int: the most tokens a request may reach (max_model_len, or what "
                             "the pool holds + 1)")
      .def(
          "add_request",
          [](Scheduler& s, const Request& request, const SamplingParams& params,
             std::optional<TokenId> eos_token_id, int32_t priority,
             std::optional<double> arrival_time) {
            s.add_request(request, params, eos_token_id, priority, arrival_time);
          },
          py::arg("request"), py::arg("sampling_params"), py::arg("eos_token_id") = py::none(),
          py::arg("priority") = 0, py::arg("arrival_time") = py::none(),
          "add_request(request: Request, sampling_params: SamplingParams, eos_token_id: int | "
          "None = None, priority: int = 0, arrival_time: float | None = None) -> None. The "
          "scheduler keeps its own copy of `request` (read it back with get_sequence). "
          "ValueError: a live id, a prompt of max_model_len tokens or more, bad params; "
          "pagedkv.CapacityError: a prompt the pool can never hold (rule 29)")
      .def("abort_request", &Scheduler::abort_request, py::arg("request_id"),
           "abort_request(request_id: str) -> bool: frees the request in any state; False "
           "(no-op) for an unknown or finished id")
      .def("schedule", py::overload_cast<>(&Scheduler::schedule),
           "schedule() -> SchedulerOutput: one step; RuntimeError while the previous output "
           "awaits update_from_output")
      .def(
          "update_from_output",
          [](Scheduler& s, const SchedulerOutput& out, const SampledById& sampled) {
            return s.update_from_output(out, sampled);
          },
          py::arg("scheduler_output"), py::arg("sampled_token_ids"),
          "update_from_output(scheduler_output: SchedulerOutput, sampled_token_ids: dict[str, "
          "list[int]]) -> list[EngineCoreOutput]: one token per request that completed its "
          "tokens (partial prefill chunks produce none; tokens given for them are ignored)")
      .def(
          "update_from_output",
          [](Scheduler& s, const SchedulerOutput& out, const SampledInOrder& sampled) {
            return s.update_from_output(out, sampled);
          },
          py::arg("scheduler_output"), py::arg("sampled_token_ids"),
          "update_from_output(scheduler_output: SchedulerOutput, sampled_token_ids: "
          "list[list[int]]) -> list[EngineCoreOutput]: the same, entry i for request i of "
          "scheduler_output.num_scheduled_tokens")
      .def("num_waiting", &Scheduler::num_waiting, "num_waiting() -> int")
      .def("num_running", &Scheduler::num_running, "num_running() -> int")
      .def("has_unfinished_requests", &Scheduler::has_unfinished_requests,
           "has_unfinished_requests() -> bool")
      .def_property_readonly(
          "running_req_ids", [](const Scheduler& s) { return ids_of(s.running()); },
          "list[str]: running requests in admission order")
      .def_property_readonly(
          "waiting_req_ids", [](const Scheduler& s) { return ids_of(s.waiting()); },
          "list[str]: waiting requests, head (next to admit) first")
      .def(
          "get_sequence",
          [](const Scheduler& s, const std::string& id) -> std::optional<Sequence> {
            const Sequence* seq = s.find_sequence(id);
            if (seq == nullptr) return std::nullopt;
            return *seq;
          },
          py::arg("request_id"),
          "get_sequence(request_id: str) -> Sequence | None: a snapshot of a live request")
      .def_property_readonly("stats", &Scheduler::stats, "SchedulerStats (a snapshot)")
      .def("verify", &Scheduler::verify,
           "verify() -> None: raises pagedkv.InternalError naming a broken invariant")
      .def("__repr__", [](const Scheduler& s) {
        return fmt::format("Scheduler(policy='{}', running={}, waiting={})",
                           scheduling_policy_name(s.config().policy), s.num_running(),
                           s.num_waiting());
      });
}

}  // namespace

void bind_scheduler(py::module_& m) {
  bind_config(m);
  bind_sampling_params(m);
  bind_outputs(m);
  bind_sequence(m);
  bind_scheduler_class(m);
}

}  // namespace pagedkv::python
