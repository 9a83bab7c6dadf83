// KVCacheManager, its config (KVCacheConfig, KVCacheGroupSpec) and PrefixCacheStats.
// Registration only: validation and policy live in the C++ library. Pages per group cross the
// boundary as lists of lists of ints; Request and PagePool are the classes of bind_hash.cpp and
// bind_pool.cpp.
#include <pybind11/operators.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include <fmt/format.h>

#include "arguments.h"
#include "bindings.h"
#include "page_ids.h"
#include "pagedkv/hash/request.h"
#include "pagedkv/manager/kv_cache_config.h"
#include "pagedkv/manager/kv_cache_manager.h"
#include "pagedkv/manager/prefix_cache_stats.h"

namespace py = pybind11;

namespace pagedkv::python {
namespace {

std::string algorithm_str(HashAlgorithm a) { return std::string(hash_algorithm_name(a)); }

std::string group_repr(const KVCacheGroupSpec& g) {
  if (g.kind == AttentionKind::kSlidingWindow) {
    return fmt::format("KVCacheGroupSpec(kind='sliding_window', page_size={}, sliding_window={})",
                       g.page_size, g.sliding_window);
  }
  return fmt::format("KVCacheGroupSpec(kind='full_attention', page_size={})", g.page_size);
}

void bind_group_spec(py::module_& m) {
  py::class_<KVCacheGroupSpec>(m, "KVCacheGroupSpec",
                               "One KV-cache group: attention kind ('full_attention' or "
                               "'sliding_window'), page size, window (tokens; 0 for full).")
      .def(py::init([](const std::string& kind, int32_t page_size, int32_t sliding_window) {
             KVCacheGroupSpec g{parse_attention_kind(kind), page_size, sliding_window};
             g.validate();
             return g;
           }),
           py::arg("kind") = "full_attention", py::arg("page_size") = 16,
           py::arg("sliding_window") = 0)
      .def_static("full_attention", &KVCacheGroupSpec::full_attention, py::arg("page_size"))
      .def_static("sliding_window_attention", &KVCacheGroupSpec::sliding_window_attention,
                  py::arg("page_size"), py::arg("sliding_window"))
      .def_property(
          "kind",
          [](const KVCacheGroupSpec& g) { return std::string(attention_kind_name(g.kind)); },
          [](KVCacheGroupSpec& g, const std::string& k) { g.kind = parse_attention_kind(k); })
      .def_readwrite("page_size", &KVCacheGroupSpec::page_size)
      .def_readwrite("sliding_window", &KVCacheGroupSpec::sliding_window)
      .def(
          "validate", [](const KVCacheGroupSpec& g) { g.validate(); },
          "validate() -> None: ValueError naming the bad field (page_size > 0; a window only "
          "for sliding_window groups).")
      .def(py::self == py::self)  // NOLINT
      .def("__repr__", &group_repr);
}

void bind_config(py::module_& m) {
  py::class_<KVCacheConfig>(m, "KVCacheConfig",
                            "The validated description of a KV cache: pool size (null page "
                            "included), max_model_len, groups, caching, hash algorithm, events, "
                            "speculative tokens (> 0 drops one more hit page).")
      .def(py::init([](int32_t num_pages, int32_t max_model_len,
                       std::vector<KVCacheGroupSpec> groups, bool enable_caching,
                       const py::object& hash_algorithm, bool enable_kv_events,
                       int32_t num_speculative_tokens) {
             KVCacheConfig c;
             c.num_pages = num_pages;
             c.max_model_len = max_model_len;
             c.groups = std::move(groups);
             c.enable_caching = enable_caching;
             c.hash_algorithm = hash_algorithm_arg(hash_algorithm);
             c.enable_kv_events = enable_kv_events;
             c.num_speculative_tokens = num_speculative_tokens;
             c.validate();
             return c;
           }),
           py::arg("num_pages"), py::arg("max_model_len"), py::arg("groups"),
           py::arg("enable_caching") = true, py::arg("hash_algorithm") = "xxh3_128",
           py::arg("enable_kv_events") = false, py::arg("num_speculative_tokens") = 0)
      .def_readwrite("num_pages", &KVCacheConfig::num_pages)
      .def_readwrite("max_model_len", &KVCacheConfig::max_model_len)
      .def_readwrite("groups", &KVCacheConfig::groups)
      .def_readwrite("enable_caching", &KVCacheConfig::enable_caching)
      .def_property(
          "hash_algorithm", [](const KVCacheConfig& c) { return algorithm_str(c.hash_algorithm); },
          [](KVCacheConfig& c, const py::object& a) { c.hash_algorithm = hash_algorithm_arg(a); })
      .def_readwrite("enable_kv_events", &KVCacheConfig::enable_kv_events)
      .def_readwrite("num_speculative_tokens", &KVCacheConfig::num_speculative_tokens)
      .def_property_readonly("lcm_page_size", &KVCacheConfig::lcm_page_size)
      .def_property_readonly("num_usable_pages", &KVCacheConfig::num_usable_pages)
      .def("validate", &KVCacheConfig::validate,
           "validate() -> None: ValueError naming the first bad field.")
      .def("__repr__", [](const KVCacheConfig& c) {
        std::string groups;
        for (const auto& g : c.groups) groups += (groups.empty() ? "" : ", ") + group_repr(g);
        return fmt::format(
            "KVCacheConfig(num_pages={}, max_model_len={}, groups=[{}], enable_caching={}, "
            "hash_algorithm='{}', enable_kv_events={}, num_speculative_tokens={})",
            c.num_pages, c.max_model_len, groups, c.enable_caching ? "True" : "False",
            algorithm_str(c.hash_algorithm), c.enable_kv_events ? "True" : "False",
            c.num_speculative_tokens);
      });
}

void bind_stats(py::module_& m) {
  py::class_<PrefixCacheStats>(m, "PrefixCacheStats",
                               "Prefix-cache hits in tokens. requests/queries/hits: fresh "
                               "lookups; resumed_*: requests resumed after a preemption; the "
                               "windowed rate covers the latest window_capacity fresh lookups.")
      .def(py::init<int32_t>(), py::arg("window_capacity") = PrefixCacheStats::kDefaultWindow)
      .def("record", &PrefixCacheStats::record, py::arg("num_tokens"), py::arg("num_hit_tokens"),
           py::arg("resumed") = false,
           "record(num_tokens: int, num_hit_tokens: int, resumed: bool = False) -> None: one "
           "lookup (rule 22).")
      .def_property_readonly("requests", &PrefixCacheStats::requests)
      .def_property_readonly("queries", &PrefixCacheStats::queries)
      .def_property_readonly("hits", &PrefixCacheStats::hits)
      .def_property_readonly("resumed_requests", &PrefixCacheStats::resumed_requests)
      .def_property_readonly("resumed_queries", &PrefixCacheStats::resumed_queries)
      .def_property_readonly("resumed_hits", &PrefixCacheStats::resumed_hits)
      .def_property_readonly("hit_rate", &PrefixCacheStats::hit_rate)
      .def_property_readonly("resumed_hit_rate", &PrefixCacheStats::resumed_hit_rate)
      .def_property_readonly("windowed_hit_rate", &PrefixCacheStats::windowed_hit_rate)
      .def_property_readonly("window_capacity", &PrefixCacheStats::window_capacity)
      .def_property_readonly("window_size", &PrefixCacheStats::window_size)
      .def_property_readonly("window_queries", &PrefixCacheStats::window_queries)
      .def_property_readonly("window_hits", &PrefixCacheStats::window_hits)
      .def("reset", &PrefixCacheStats::reset, "reset() -> None: zeroes every count.")
      .def("verify", &PrefixCacheStats::verify,
           "verify() -> None: checks the counts' invariants (AssertionError).")
      .def("__repr__", [](const PrefixCacheStats& s) {
        return fmt::format(
            "PrefixCacheStats(requests={}, queries={}, hits={}, resumed_requests={}, "
            "resumed_queries={}, resumed_hits={}, windowed_hit_rate={:.4f})",
            s.requests(), s.queries(), s.hits(), s.resumed_requests(), s.resumed_queries(),
            s.resumed_hits(), s.windowed_hit_rate());
      });
}

void bind_group_plan(py::module_& m) {
  py::class_<GroupPlan>(m, "GroupPlan",
                        "What one KV-cache group does in a planned allocation (read-only). Page "
                        "indices are positions in the request's page list of the group.")
      .def_readonly("hit_pages", &GroupPlan::hit_pages,
                    "list[int]: this step's hit pages, touched and appended in this order.")
      .def_readonly("num_evictable_hits", &GroupPlan::num_evictable_hits,
                    "int: hit pages now in the free queue (touching takes them out).")
      .def_readonly("num_new_pages", &GroupPlan::num_new_pages,
                    "int: pages taken from the free-queue head.")
      .def_readonly("dropped_pages", &GroupPlan::dropped_pages,
                    "list[int]: pages leaving the sliding window, in the order they are freed.")
      .def_readonly("num_pages_freed_by_skip", &GroupPlan::num_pages_freed_by_skip,
                    "int: dropped pages no other request holds (they rejoin the free queue).")
      .def_readonly("num_skipped_pages", &GroupPlan::num_skipped_pages,
                    "int: leading null entries of the page list afterwards.")
      .def_readonly("num_pages_held_after", &GroupPlan::num_pages_held_after,
                    "int: non-null pages the request holds afterwards.")
      .def_readonly("cache_begin", &GroupPlan::cache_begin,
                    "int: first page index given to the prefix cache.")
      .def_readonly("cache_end", &GroupPlan::cache_end,
                    "int: end (exclusive) of the page indices given to the prefix cache.")
      .def_property_readonly("num_free_pages_needed", &GroupPlan::num_free_pages_needed,
                             "int: num_new_pages + num_evictable_hits.")
      .def("__repr__", [](const GroupPlan& g) {
        return fmt::format(
            "GroupPlan(hit_pages={}, num_new_pages={}, dropped_pages={}, cache=[{}, {}))",
            g.hit_pages.size(), g.num_new_pages, g.dropped_pages.size(), g.cache_begin,
            g.cache_end);
      });
}

void bind_allocation_plan(py::module_& m) {
  py::class_<AllocationPlan>(m, "AllocationPlan",
                             "What KVCacheManager.allocate_slots would do, from "
                             "plan_allocation (read-only). Pass it to apply() before any other "
                             "call that changes pages, or apply() raises RuntimeError.")
      .def_property_readonly(
          "status",
          [](const AllocationPlan& p) { return std::string(allocation_status_name(p.status)); },
          "str: 'ok' or 'not_enough_free_pages'.")
      .def_property_readonly("ok", &AllocationPlan::ok, "bool: status == 'ok'.")
      .def_property_readonly(
          "request_id", [](const AllocationPlan& p) { return std::string(p.request_id()); },
          "str: the planned request's id.")
      .def_readonly("groups", &AllocationPlan::groups, "list[GroupPlan]: one per group.")
      .def_readonly("num_free_pages_needed", &AllocationPlan::num_free_pages_needed,
                    "int: new pages plus hit pages now in the free queue.")
      .def_readonly("num_evictable_hit_pages", &AllocationPlan::num_evictable_hit_pages,
                    "int: hit pages now in the free queue.")
      .def_readonly("num_free_pages_available", &AllocationPlan::num_free_pages_available,
                    "int: free pages plus the pages the window drops return.")
      .def_readonly("num_pages_held_after", &AllocationPlan::num_pages_held_after,
                    "int: non-null pages the request holds afterwards, all groups.")
      .def_readonly("num_tokens_need_slot", &AllocationPlan::num_tokens_need_slot,
                    "int: min(computed + hit + new + lookahead, max_model_len).")
      .def_readonly("num_tokens_to_cache", &AllocationPlan::num_tokens_to_cache,
                    "int: min(computed + hit + new, num_tokens); 0 with caching off.")
      .def("__repr__", [](const AllocationPlan& p) {
        return fmt::format(
            "AllocationPlan(request_id='{}', status='{}', num_free_pages_needed={}, "
            "num_free_pages_available={})",
            p.request_id(), allocation_status_name(p.status), p.num_free_pages_needed,
            p.num_free_pages_available);
      });
}

KVCacheConfig simple_config(int32_t num_pages, int32_t page_size, int32_t max_model_len,
                            bool enable_caching, const py::object& hash_algorithm,
                            bool enable_kv_events, std::optional<int32_t> sliding_window,
                            int32_t num_speculative_tokens) {
  KVCacheConfig c =
      KVCacheConfig::single_group(num_pages, page_size, max_model_len, enable_caching);
  if (sliding_window) {
    c.groups[0] = KVCacheGroupSpec::sliding_window_attention(page_size, *sliding_window);
  }
  c.hash_algorithm = hash_algorithm_arg(hash_algorithm);
  c.enable_kv_events = enable_kv_events;
  c.num_speculative_tokens = num_speculative_tokens;
  return c;
}

void bind_kv_cache_manager(py::module_& m) {
  py::class_<KVCacheManager>(
      m, "KVCacheManager",
      "vLLM-v1-style KV-cache manager over one PagePool: prefix-cache lookup "
      "(get_computed_pages), allocation (allocate_slots: None when pages are short, nothing "
      "changed; pagedkv.CapacityError when the request can never fit) and free.")
      .def(py::init([](int32_t num_pages, int32_t page_size, int32_t max_model_len,
                       bool enable_caching, const py::object& hash_algorithm, bool enable_kv_events,
                       std::optional<int32_t> sliding_window, int32_t num_speculative_tokens) {
             return std::make_unique<KVCacheManager>(
                 simple_config(num_pages, page_size, max_model_len, enable_caching, hash_algorithm,
                               enable_kv_events, sliding_window, num_speculative_tokens));
           }),
           py::arg("num_pages"), py::arg("page_size"), py::arg("max_model_len"),
           py::arg("enable_caching") = true, py::arg("hash_algorithm") = "xxh3_128",
           py::arg("enable_kv_events") = false, py::arg("sliding_window") = py::none(),
           py::arg("num_speculative_tokens") = 0,
           "One group: full attention, or sliding window when sliding_window (tokens) is set.")
      .def_static(
          "from_config",
          [](const KVCacheConfig& config) { return std::make_unique<KVCacheManager>(config); },
          py::arg("config"))
      .def_property_readonly(
          "config", [](const KVCacheManager& km) { return km.config(); }, "A copy of the config.")
      .def_property_readonly("num_groups", &KVCacheManager::num_groups)
      .def_property_readonly(
          "page_pool", [](KVCacheManager& km) -> PagePool& { return km.page_pool(); },
          py::return_value_policy::reference_internal,
          "The manager's PagePool (kept alive by the manager). Read it freely; taking or "
          "freeing pages through it directly breaks verify().")
      .def(
          "get_computed_pages",
          [](KVCacheManager& km, const Request& r, bool resumed) {
            ComputedPages hit = km.get_computed_pages(r, resumed);
            return py::make_tuple(to_python(std::move(hit.pages)), hit.num_computed_tokens);
          },
          py::arg("request"), py::arg("resumed") = false,
          "get_computed_pages(request: Request, resumed: bool = False) -> (list[PageIds], "
          "int): hit pages per group and num_computed_tokens. Records one lookup in stats, "
          "among the resumed ones when `resumed` (the request comes back after a preemption).")
      .def(
          "allocate_slots",
          [](KVCacheManager& km, const Request& r, int32_t num_new_tokens,
             int32_t num_new_computed_tokens, py::handle new_computed_pages,
             int32_t num_lookahead_tokens) -> py::object {
            const std::optional<GroupPages> hit =
                optional_group_pages_arg(new_computed_pages, "new_computed_pages");
            std::optional<GroupPages> pages =
                km.allocate_slots(r, {.num_new_tokens = num_new_tokens,
                                      .num_new_computed_tokens = num_new_computed_tokens,
                                      .new_computed_pages = hit ? &*hit : nullptr,
                                      .num_lookahead_tokens = num_lookahead_tokens});
            if (!pages) return py::none();
            return to_python(std::move(*pages));
          },
          py::arg("request"), py::arg("num_new_tokens"), py::arg("num_new_computed_tokens") = 0,
          py::arg("new_computed_pages") = py::none(), py::arg("num_lookahead_tokens") = 0,
          "allocate_slots(request: Request, num_new_tokens: int, num_new_computed_tokens: int "
          "= 0, new_computed_pages: list[PageIds | list[int]] | None = None, "
          "num_lookahead_tokens: int = 0) -> list[PageIds] | None: the new pages per group, or "
          "None (nothing changed) when not enough pages are free (rule 18).")
      .def(
          "plan_allocation",
          [](const KVCacheManager& km, const Request& r, int32_t num_new_tokens,
             int32_t num_new_computed_tokens, py::handle new_computed_pages,
             int32_t num_lookahead_tokens) {
            const std::optional<GroupPages> hit =
                optional_group_pages_arg(new_computed_pages, "new_computed_pages");
            return km.plan_allocation(r, {.num_new_tokens = num_new_tokens,
                                          .num_new_computed_tokens = num_new_computed_tokens,
                                          .new_computed_pages = hit ? &*hit : nullptr,
                                          .num_lookahead_tokens = num_lookahead_tokens});
          },
          py::arg("request"), py::arg("num_new_tokens"), py::arg("num_new_computed_tokens") = 0,
          py::arg("new_computed_pages") = py::none(), py::arg("num_lookahead_tokens") = 0,
          py::keep_alive<0, 2>(),
          "plan_allocation(request: Request, num_new_tokens: int, num_new_computed_tokens: int "
          "= 0, new_computed_pages: list[list[int]] | None = None, num_lookahead_tokens: int = "
          "0) -> AllocationPlan: what allocate_slots with the same arguments would do, "
          "changing nothing; raises what allocate_slots raises. The plan keeps the request "
          "alive.")
      .def(
          "apply",
          [](KVCacheManager& km, const AllocationPlan& plan) { return to_python(km.apply(plan)); },
          py::arg("plan"),
          "apply(plan: AllocationPlan) -> list[PageIds]: carries the plan out and returns the "
          "new pages per group. RuntimeError (nothing changed) if the plan is not ok, stale "
          "(pages changed since it was made), of another manager or its request changed.")
      .def_property_readonly("generation", &KVCacheManager::generation,
                             "int: changes with every call that changes pages.")
      .def("free", py::overload_cast<const Request&>(&KVCacheManager::free), py::arg("request"),
           "free(request: Request) -> None: returns the request's pages, each group's in "
           "reverse order (rule 20). Unknown request: no-op.")
      .def("free", py::overload_cast<const std::string&>(&KVCacheManager::free),
           py::arg("request_id"), "free(request_id: str) -> None: the same, by id.")
      .def(
          "get_page_ids",
          [](const KVCacheManager& km, const std::string& id) {
            return to_python(km.get_page_ids(id));
          },
          py::arg("request_id"),
          "get_page_ids(request_id: str) -> list[PageIds]: the request's pages per group "
          "(empty lists for an unknown request).")
      .def("has_request", &KVCacheManager::has_request, py::arg("request_id"),
           "has_request(request_id: str) -> bool: whether the request holds pages.")
      .def_property_readonly("num_requests", &KVCacheManager::num_requests)
      .def("get_num_common_prefix_pages", &KVCacheManager::get_num_common_prefix_pages,
           py::arg("request"), py::arg("num_running_requests"),
           "get_num_common_prefix_pages(request: Request, num_running_requests: int) -> "
           "list[int]: per group, the leading pages of the request held by all running "
           "requests (cascade attention); 0 for sliding-window groups.")
      .def("reset_prefix_cache", &KVCacheManager::reset_prefix_cache,
           "reset_prefix_cache() -> bool: drops every cached hash; False (nothing changed) "
           "while any request holds pages (rule 10).")
      .def_property_readonly("usage", &KVCacheManager::usage)
      .def_property_readonly(
          "stats", [](const KVCacheManager& km) { return km.prefix_cache_stats(); },
          "A snapshot (copy) of the prefix-cache statistics.")
      .def("reset_stats", &KVCacheManager::reset_prefix_cache_stats,
           "reset_stats() -> None: zeroes the prefix-cache statistics.")
      .def("take_events", &KVCacheManager::take_events,
           "take_events() -> list[KVEvent]: the KV events since the last call (rule 21); empty "
           "unless enable_kv_events.")
      .def("verify", &KVCacheManager::verify,
           "verify() -> None: walks every invariant, the pool's included (AssertionError "
           "naming the first broken).")
      .def("__repr__", [](const KVCacheManager& km) {
        return fmt::format("KVCacheManager(num_pages={}, groups={}, requests={}, usage={:.4f})",
                           km.config().num_pages, km.num_groups(), km.num_requests(), km.usage());
      });
}

}  // namespace

void bind_manager(py::module_& m) {
  bind_group_spec(m);
  bind_config(m);
  bind_stats(m);
  bind_group_plan(m);
  bind_allocation_plan(m);
  bind_kv_cache_manager(m);
}

}  // namespace pagedkv::python
