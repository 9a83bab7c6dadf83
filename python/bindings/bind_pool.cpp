// PagePool and KVEvent. Registration only: every check lives in the C++
// library. Page hashes cross the boundary as their digest bytes, as long as the pool's hash
// algorithm makes them (16 for xxh3_128, 32 for sha256), the same bytes
// pagedkv.Request.page_hashes() gives. Page-id results are PageIds (list-like, zero-copy).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "arguments.h"
#include "bindings.h"
#include "int_sequence.h"
#include "page_ids.h"
#include "pagedkv/hash/request.h"
#include "pagedkv/pool/kv_events.h"
#include "pagedkv/pool/page_pool.h"

namespace py = pybind11;

namespace pagedkv::python {
namespace {

py::list digest_list(const std::vector<PageHash>& hashes, HashAlgorithm algo) {
  py::list out;
  for (const PageHash& h : hashes) out.append(digest_bytes(h, algo));
  return out;
}

// touch() takes a flat sequence of ids or, as the seed does, one sequence per group; the groups
// are touched in order, as one call.
std::vector<PageId> touch_ids_arg(py::handle ids) {
  if (py::isinstance<py::sequence>(ids) && py::len(ids) > 0) {
    py::handle first = ids[py::int_(0)];
    if (!PyLong_Check(first.ptr()) && !PyIndex_Check(first.ptr())) {
      std::vector<PageId> out;
      for (const std::vector<PageId>& g : group_pages_arg(ids, "ids")) {
        out.insert(out.end(), g.begin(), g.end());
      }
      return out;
    }
  }
  return page_ids_arg(ids, "ids");
}

const char* kind_name(KVEvent::Kind k) {
  switch (k) {
    case KVEvent::Kind::kStored: return "stored";
    case KVEvent::Kind::kRemoved: return "removed";
    case KVEvent::Kind::kAllCleared: return "all_cleared";
  }
  return "unknown";
}

}  // namespace

void bind_pool(py::module_& m) {
  py::class_<KVEvent>(m, "KVEvent",
                      "A prefix-cache event: 'stored' (pages cached under hashes), 'removed' "
                      "(one page evicted) or 'all_cleared' (reset_prefix_cache).")
      .def_property_readonly("kind", [](const KVEvent& e) { return kind_name(e.kind); })
      .def_property_readonly(
          "parent_hash",
          [](const KVEvent& e) { return optional_digest_bytes(e.parent_hash, e.hash_algorithm); })
      .def_property_readonly(
          "page_hashes",
          [](const KVEvent& e) { return digest_list(e.page_hashes, e.hash_algorithm); })
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
      .def(py::init([](int32_t num_pages, bool enable_caching, bool enable_kv_events,
                       const py::handle& hash_algorithm) {
             return std::make_unique<PagePool>(num_pages, enable_caching, enable_kv_events,
                                               hash_algorithm_arg(hash_algorithm));
           }),
           py::arg("num_pages"), py::arg("enable_caching"), py::arg("enable_kv_events") = false,
           py::arg("hash_algorithm") = "xxh3_128",
           "PagePool(num_pages: int, enable_caching: bool, enable_kv_events: bool = False, "
           "hash_algorithm: str | HashAlgorithm = 'xxh3_128'): every hash the pool holds is of "
           "hash_algorithm.")
      .def_property_readonly("num_pages", &PagePool::num_pages)
      .def_property_readonly("null_page", &PagePool::null_page)
      .def_property_readonly("enable_caching", &PagePool::enable_caching)
      .def_property_readonly("enable_kv_events", &PagePool::enable_kv_events)
      .def_property_readonly(
          "hash_algorithm",
          [](const PagePool& p) { return std::string(hash_algorithm_name(p.hash_algorithm())); },
          "str: the algorithm of every hash in the pool.")
      .def(
          "get_new_pages",
          [](PagePool& pool, int32_t n) { return to_python(pool.get_new_pages(n)); }, py::arg("n"),
          "get_new_pages(n: int) -> PageIds: pops n pages from the free-queue head, evicting "
          "their hashes (rule 3); pagedkv.CapacityError (nothing changed) if fewer are free.")
      .def(
          "free_pages",
          [](PagePool& pool, py::handle ids) { pool.free_pages(page_ids_arg(ids, "ids")); },
          py::arg("ids"),
          "free_pages(ids: Sequence[int]) -> None: decrements every page; those reaching ref "
          "count 0 join the free-queue tail in this order (rule 4).")
      .def(
          "touch", [](PagePool& pool, py::handle ids) { pool.touch(touch_ids_arg(ids)); },
          py::arg("ids"),
          "touch(ids: Sequence[int] | Sequence[Sequence[int]]) -> None: increments ref counts, "
          "unlinking free pages from the queue (rule 8); a flat sequence or one per group.")
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
          "get_cached_page(hash: bytes, group_ids: list[int]) -> list[int] | None: one page per "
          "group if every group hits (the first-inserted page, rule 9), else None.")
      .def(
          "get_cached_prefix",
          [](const PagePool& pool, const std::vector<py::bytes>& hashes, GroupId group) {
            std::vector<PageHash> keys;
            keys.reserve(hashes.size());
            for (const py::bytes& h : hashes) keys.push_back(PageHash::from_bytes(std::string(h)));
            std::vector<PageId> out;
            pool.get_cached_prefix(keys, group, out);
            return to_python(std::move(out));
          },
          py::arg("hashes"), py::arg("group_id") = 0,
          "get_cached_prefix(hashes: list[bytes], group_id: int = 0) -> PageIds: the pages of "
          "the longest cached prefix of `hashes` in one group (stops at the first miss).")
      .def(
          "cache_full_pages",
          [](PagePool& pool, const Request& request, py::handle pages_obj, int32_t num_cached_pages,
             int32_t num_full_pages, int32_t page_size, GroupId group) {
            const std::vector<PageId> pages = page_ids_arg(pages_obj, "pages");
            // The pool takes the request's hash chain and tokens, not the request.
            const PageChainView chain{.page_hashes = request.page_hashes(page_size),
                                      .token_ids = request.all_token_ids(),
                                      .page_size = page_size,
                                      .lora_id = request.options().lora_id,
                                      .hash_algorithm = request.hasher().algorithm()};
            pool.cache_full_pages(chain, pages, num_cached_pages, num_full_pages, group);
          },
          py::arg("request"), py::arg("pages"), py::arg("num_cached_pages"),
          py::arg("num_full_pages"), py::arg("page_size"), py::arg("kv_cache_group_id") = 0,
          "cache_full_pages(request: Request, pages: Sequence[int], num_cached_pages: int, "
          "num_full_pages: int, page_size: int, kv_cache_group_id: int = 0) -> None: caches "
          "pages[num_cached_pages:num_full_pages] under the request's page hashes (one "
          "'stored' event).")
      .def("reset_prefix_cache", &PagePool::reset_prefix_cache,
           "reset_prefix_cache() -> bool: drops every hash; False (nothing changed) while any "
           "usable page is held (rule 10).")
      .def("get_num_free_pages", &PagePool::get_num_free_pages, "get_num_free_pages() -> int")
      .def("get_usage", &PagePool::get_usage,
           "get_usage() -> float: held usable pages / usable pages (rule 2).")
      .def(
          "get_all_free_pages",
          [](const PagePool& pool) { return to_python(pool.get_all_free_pages()); },
          "get_all_free_pages() -> PageIds: the free queue, head (next evicted) first.")
      .def("ref_count", &PagePool::ref_count, py::arg("page"), "ref_count(page: int) -> int")
      .def(
          "page_hash",
          [](const PagePool& pool, PageId page) {
            return optional_digest_bytes(pool.page_hash(page), pool.hash_algorithm());
          },
          py::arg("page"), "page_hash(page: int) -> bytes | None: the page's digest, if cached.")
      .def("num_cached_pages", &PagePool::num_cached_pages,
           "num_cached_pages() -> int: pages that carry a hash.")
      .def("num_evictions", &PagePool::num_evictions,
           "num_evictions() -> int: hashes dropped when their pages were reallocated.")
      .def("take_events", &PagePool::take_events,
           "take_events() -> list[KVEvent]: the events since the last call (rule 21).")
      .def("verify", &PagePool::verify,
           "verify() -> None: walks every invariant (AssertionError naming the first broken).")
      .def("__repr__", [](const PagePool& pool) {
        return "PagePool(num_pages=" + std::to_string(pool.num_pages()) +
               ", free=" + std::to_string(pool.get_num_free_pages()) +
               ", cached=" + std::to_string(pool.num_cached_pages()) + ")";
      });
}

}  // namespace pagedkv::python
