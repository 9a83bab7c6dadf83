// Python registration of the replay component: traces, the default workload, the exact ideal
// and the cache-only replay. replay() returns the same fields as `pagedkv replay --json`.
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "bindings.h"
#include "pagedkv/hash/page_hash.h"
#include "pagedkv/replay/default_workload.h"
#include "pagedkv/replay/replay.h"
#include "pagedkv/replay/trace.h"

namespace py = pybind11;

namespace pagedkv::python {
namespace {

TraceFormat format_for(const std::string& path, const std::optional<std::string>& format) {
  return format ? parse_trace_format(*format) : trace_format_from_path(path);
}

const TraceRequest& request_at(const Trace& t, int64_t i) {
  const auto n = static_cast<int64_t>(t.requests.size());
  if (i < 0) i += n;
  if (i < 0 || i >= n) throw py::index_error("trace request index out of range");
  return t.requests[static_cast<size_t>(i)];
}

py::dict ideal_dict(const IdealStats& s) {
  py::dict d;
  d["requests"] = s.requests;
  d["tokens"] = s.tokens;
  d["full_pages"] = s.full_pages;
  d["hit_tokens"] = s.hit_tokens;
  d["hit_pages"] = s.hit_pages;
  d["token_hit_rate"] = s.token_hit_rate();
  d["page_hit_rate"] = s.page_hit_rate();
  d["unbounded_num_pages"] = s.unbounded_num_pages;
  return d;
}

}  // namespace

void bind_replay(py::module_& m) {
  py::class_<TraceRequest>(m, "TraceRequest", "One request of a trace (read-only).")
      .def_readonly("timestamp", &TraceRequest::timestamp, "Seconds from the start of its file.")
      .def_readonly("input_length", &TraceRequest::input_length)
      .def_readonly("output_length", &TraceRequest::output_length)
      .def_readonly("block_keys", &TraceRequest::block_keys,
                    "One 64-bit key per block of the prompt (the last block may be partial).")
      .def("__repr__", [](const TraceRequest& r) {
        return "TraceRequest(timestamp=" + std::to_string(r.timestamp) +
               ", input_length=" + std::to_string(r.input_length) +
               ", blocks=" + std::to_string(r.block_keys.size()) + ")";
      });

  py::class_<Trace>(m, "Trace", "Requests in replay order with per-block keys.")
      .def_readonly("block_size", &Trace::block_size)
      .def_readonly("source", &Trace::source)
      .def_property_readonly("num_tokens", &Trace::num_tokens)
      .def_property_readonly("max_input_length", &Trace::max_input_length)
      .def("__len__", [](const Trace& t) { return t.requests.size(); })
      .def("__getitem__", &request_at, py::arg("index"),
           py::return_value_policy::reference_internal)
      .def(
          "prompt_tokens",
          [](const Trace& t, int64_t i) {
            std::vector<TokenId> out;
            synthesize_prompt(request_at(t, i), t.block_size, out);
            return out;
          },
          py::arg("index"), "The synthesised prompt token ids of request `index`.")
      .def("validate", &Trace::validate,
           "validate() -> None: ValueError naming the first bad request (timestamps, "
           "lengths, block ids).");

  m.def(
      "load_trace",
      [](const std::string& path, const std::optional<std::string>& format) {
        const TraceFormat f = format_for(path, format);
        py::gil_scoped_release release;
        return load_trace(path, f);
      },
      py::arg("path"), py::arg("format") = py::none(),
      "Loads a trace: format 'mooncake' or 'kv-cache-tester' (default from the extension; a "
      "directory loads kv-cache-tester sessions). ValueError names the file, line and field.");
  m.def(
      "load_traces",
      [](const std::vector<std::string>& paths, const std::optional<std::string>& format) {
        if (paths.empty()) throw py::value_error("no trace file given");
        const TraceFormat f = format_for(paths[0], format);
        py::gil_scoped_release release;
        return load_traces(paths, f);
      },
      py::arg("paths"), py::arg("format") = py::none(),
      "Several files merged into one trace, each file its own hash-id scope.");
  m.def(
      "parse_trace",
      [](const std::string& text, const std::string& format, const std::string& source) {
        return parse_trace_format(format) == TraceFormat::kMooncake
                   ? parse_mooncake(text, source)
                   : parse_kv_cache_tester(text, source);
      },
      py::arg("text"), py::arg("format"), py::arg("source") = "<string>",
      "Parses trace text (as it would appear in a file) without touching the disk.");
  m.def(
      "default_workload",
      [](std::optional<uint64_t> seed, std::optional<int32_t> num_single_requests,
         std::optional<int32_t> num_chats) {
        DefaultWorkloadOptions o;
        if (seed) o.seed = *seed;
        if (num_single_requests) o.num_single_requests = *num_single_requests;
        if (num_chats) o.num_chats = *num_chats;
        return default_workload(o);
      },
      py::arg("seed") = py::none(), py::arg("num_single_requests") = py::none(),
      py::arg("num_chats") = py::none(),
      "The built-in workload of `pagedkv replay` (shared system prompts + multi-turn chats).");
  m.def(
      "ideal_hits",
      [](const Trace& t, int32_t page_size, std::optional<int64_t> limit) {
        return ideal_dict(ideal_hits(t, page_size, limit.value_or(-1)));
      },
      py::arg("trace"), py::arg("page_size"), py::arg("limit") = py::none(),
      "Exact hit statistics of an unbounded prefix cache.");
  m.def(
      "replay",
      [](const Trace& t, int32_t page_size, int32_t num_pages, const std::string& hash,
         std::optional<int64_t> limit) {
        ReplayOptions o;
        o.page_size = page_size;
        o.num_pages = num_pages;
        o.hash_algorithm = parse_hash_algorithm(hash);
        o.max_requests = limit.value_or(-1);
        std::string json;
        {
          py::gil_scoped_release release;
          json = replay_result_json(replay(t, o));
        }
        return py::module_::import("json").attr("loads")(json);
      },
      py::arg("trace"), py::arg("page_size"), py::arg("num_pages"), py::arg("hash") = "xxh3_128",
      py::arg("limit") = py::none(),
      "Cache-only replay at one capacity; returns the fields of `pagedkv replay --json`.");
}

}  // namespace pagedkv::python
