// PagePool, KVEvent and HBMPageManager. Registration only: every check lives in the C++
// library. Page hashes cross the boundary as their digest bytes (16 for xxh3_128, 32 for
// sha256), the same bytes pagedkv.Request.page_hashes() gives.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bindings.h"
#include "pagedkv/compat/hbm_page_manager.h"
#include "pagedkv/pool/kv_events.h"
#include "pagedkv/pool/page_pool.h"
#include "pagedkv/hash/request.h"

namespace py = pybind11;

namespace pagedkv::python {
namespace {

// A PageHash carries no algorithm tag: xxh3_128 leaves words 2..3 zero, a sha256 digest
// fills them (all 128 upper bits zero has probability 2^-128).
py::bytes hash_bytes(const PageHash& h) {
  const int size = (h.words[2] | h.words[3]) == 0 ? 16 : 32;
  return py::bytes(h.bytes(size));
}

py::object optional_hash_bytes(const std::optional<PageHash>& h) {
  if (!h) return py::none();
  return hash_bytes(*h);
}

py::list hash_list(const std::vector<PageHash>& hashes) {
  py::list out;
  for (const PageHash& h : hashes) out.append(hash_bytes(h));
  return out;
}

PageId to_page_id(py::handle item) {
  if (!py::isinstance<py::int_>(item) || py::isinstance<py::bool_>(item)) {
    throw py::type_error("page ids must be int, got " +
                         std::string(py::str(py::type::of(item))));
  }
  return item.cast<PageId>();
}

// touch() takes a flat list of ids or, as the seed does, one list (or tuple) per group; the
// groups are touched in order, as one call.
std::vector<PageId> flatten_page_ids(const py::iterable& ids) {
  std::vector<PageId> out;
  for (py::handle item : ids) {
    if (py::isinstance<py::list>(item) || py::isinstance<py::tuple>(item)) {
      for (py::handle inner : item) out.push_back(to_page_id(inner));
    } else {
      out.push_back(to_page_id(item));
    }
  }
  return out;
}

const char* kind_name(KVEvent::Kind k) {
  switch (k) {
    case KVEvent::Kind::kStored:
      return "stored";
    case KVEvent::Kind::kRemoved:
      return "removed";
    case KVEvent::Kind::kAllCleared:
      return "all_cleared";
  }
  return "unknown";
}

}  // namespace

void bind_pool(py::module_& m) {
  py::class_<KVEvent>(m, "KVEvent",
                      "A prefix-cache event: 'stored' (pages cached under hashes), 'removed' "
                      "(one page evicted) or 'all_cleared' (reset_prefix_cache).")
      .def_property_readonly("kind", [](const KVEvent& e) { return kind_name(e.kind); })
      .def_property_readonly("parent_hash",
                             [](const KVEvent& e) { return optional_hash_bytes(e.parent_hash); })
      .def_property_readonly("page_hashes",
                             [](const KVEvent& e) { return hash_list(e.page_hashes); })
      .def_readonly("token_ids", &KVEvent::token_ids)
      .def_readonly("page_size", &KVEvent::page_size)
      .def_readonly("lora_id", &KVEvent::lora_id)
      .def_readonly("group_id", &KVEvent::group_id)
      .def_readonly("page_ids", &KVEvent::page_ids)
      .def("__repr__", [](const KVEvent& e) {
        return "KVEvent(kind='" + std::string(kind_name(e.kind)) +
               "', pages=" + std::string(py::repr(py::cast(e.page_ids))) +
               ", group_id=" + std::to_string(e.group_id) + ")";
      });

  py::class_<PagePool>(m, "PagePool",
                       "The pool of KV pages with prefix caching. Page 0 is the null page; "
                       "the free queue is the eviction order (head first).")
      .def(py::init<int32_t, bool, bool>(), py::arg("num_pages"), py::arg("enable_caching"),
           py::arg("enable_kv_events") = false)
      .def_property_readonly("num_pages", &PagePool::num_pages)
      .def_property_readonly("null_page", &PagePool::null_page)
      .def_property_readonly("enable_caching", &PagePool::enable_caching)
      .def_property_readonly("enable_kv_events", &PagePool::enable_kv_events)
      .def("get_new_pages", py::overload_cast<int32_t>(&PagePool::get_new_pages), py::arg("n"),
           "Pops n pages from the free-queue head (evicting their hashes).")
      .def(
          "free_pages",
          [](PagePool& pool, const std::vector<PageId>& ids) { pool.free_pages(ids); },
          py::arg("ids"), "Frees pages; those reaching ref count 0 join the tail in this order.")
      .def(
          "touch",
          [](PagePool& pool, const py::iterable& ids) { pool.touch(flatten_page_ids(ids)); },
          py::arg("ids"),
          "Increments ref counts (unlinking free pages). Takes a list of ids or a list/tuple "
          "of lists (one per group).")
      .def(
          "get_cached_page",
          [](const PagePool& pool, const py::bytes& hash,
             const std::vector<GroupId>& group_ids) -> py::object {
            std::vector<PageId> out;
            if (!pool.get_cached_page(PageHash::from_bytes(std::string(hash)), group_ids, out)) {
              return py::none();
            }
            return py::cast(out);
          },
          py::arg("hash"), py::arg("group_ids"),
          "One page per group if every group hits (the first-inserted page), else None.")
      .def(
          "get_cached_prefix",
          [](const PagePool& pool, const std::vector<py::bytes>& hashes, GroupId group) {
            std::vector<PageHash> keys;
            keys.reserve(hashes.size());
            for (const py::bytes& h : hashes) keys.push_back(PageHash::from_bytes(std::string(h)));
            std::vector<PageId> out;
            pool.get_cached_prefix(keys, group, out);
            return out;
          },
          py::arg("hashes"), py::arg("group_id") = 0,
          "The pages of the longest cached prefix of `hashes` in one group (stops at the "
          "first miss).")
      .def(
          "cache_full_pages",
          [](PagePool& pool, const Request& request, const std::vector<PageId>& pages,
             int32_t num_cached_pages, int32_t num_full_pages, int32_t page_size,
             GroupId group) {
            // The pool takes the request's hash chain and tokens, not the request.
            const PageChainView chain{.page_hashes = request.page_hashes(page_size),
                                      .token_ids = request.all_token_ids(),
                                      .page_size = page_size,
                                      .lora_id = request.options().lora_id};
            pool.cache_full_pages(chain, pages, num_cached_pages, num_full_pages, group);
          },
          py::arg("request"), py::arg("pages"), py::arg("num_cached_pages"),
          py::arg("num_full_pages"), py::arg("page_size"), py::arg("kv_cache_group_id") = 0)
      .def("reset_prefix_cache", &PagePool::reset_prefix_cache)
      .def("get_num_free_pages", &PagePool::get_num_free_pages)
      .def("get_usage", &PagePool::get_usage)
      .def("get_all_free_pages", &PagePool::get_all_free_pages)
      .def("ref_count", &PagePool::ref_count, py::arg("page"))
      .def(
          "page_hash",
          [](const PagePool& pool, PageId page) {
            return optional_hash_bytes(pool.page_hash(page));
          },
          py::arg("page"))
      .def("num_cached_pages", &PagePool::num_cached_pages)
      .def("num_evictions", &PagePool::num_evictions)
      .def("take_events", &PagePool::take_events)
      .def("verify", &PagePool::verify)
      .def("__repr__", [](const PagePool& pool) {
        return "PagePool(num_pages=" + std::to_string(pool.num_pages()) +
               ", free=" + std::to_string(pool.get_num_free_pages()) +
               ", cached=" + std::to_string(pool.num_cached_pages()) + ")";
      });

  py::class_<HBMPageManager>(m, "HBMPageManager",
                             "Plain HBM page allocator (no prefix caching); page 0 is the "
                             "dummy page.")
      .def(py::init<int32_t, int32_t>(), py::arg("num_pages"), py::arg("page_size"))
      .def_property_readonly("page_size", &HBMPageManager::page_size)
      .def_property_readonly("current_page_index", &HBMPageManager::current_page_index)
      .def_property_readonly("num_pages", &HBMPageManager::num_pages)
      .def_property_readonly("num_free_pages", &HBMPageManager::num_free_pages)
      .def("alloc_prefill_hbm_pages", &HBMPageManager::alloc_prefill_hbm_pages,
           py::arg("prompt_len"))
      .def("alloc_hbm_pages", &HBMPageManager::alloc_hbm_pages, py::arg("n"))
      .def(
          "free_hbm_pages",
          [](HBMPageManager& mgr, const std::vector<PageId>& pages) { mgr.free_hbm_pages(pages); },
          py::arg("pages"))
      .def("verify", &HBMPageManager::verify);
}

}  // namespace pagedkv::python
