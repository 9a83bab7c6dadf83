// Python registration of the compat module, the seed-shaped APIs: seed 002's HBMPageManager,
// the seed-003 kv_cache_update with build_update_slices, and seed 004's PagedAttentionMetadata
// with the writes through it. Same NumPy dtype conventions as bind_kv_cache.cpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <vector>

#include "arguments.h"
#include "bindings.h"
#include "int_sequence.h"
#include "numpy_arrays.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/compat/hbm_page_manager.h"
#include "pagedkv/compat/kv_cache_update.h"
#include "pagedkv/compat/metadata_write.h"
#include "pagedkv/compat/paged_attention_metadata.h"
#include "pagedkv/kv_cache/paged_kv_cache.h"

namespace py = pybind11;

namespace pagedkv::python {

namespace {

int64_t as_count(const py::object& o, const char* name) {
  if (py::isinstance<py::array>(o)) {
    const IntSequence<int64_t> a(o, name);
    PAGEDKV_CHECK_ARG(a.size() == 1, "{} must be a scalar or a 1-element array", name);
    return a.span()[0];
  }
  return o.cast<int64_t>();
}

std::vector<int32_t> to_vector(const std::optional<py::object>& o, const char* name) {
  if (!o || o->is_none()) return {};
  return IntSequence<int32_t>(*o, name).release_vector();
}

template <class T>
py::array_t<T> to_numpy(const std::vector<T>& v) {
  return py::array_t<T>(static_cast<py::ssize_t>(v.size()), v.data());
}

// ---- PagedAttentionMetadata ------------------------------------------------------------

PagedAttentionMetadata make_metadata(int32_t prefill_length,
                                     std::optional<py::object> prefill_position,
                                     std::optional<py::object> prefill_page_table,
                                     std::optional<py::object> decodes_position,
                                     std::optional<py::object> decodes_page_table) {
  int32_t cols = 0;
  if (decodes_page_table && !decodes_page_table->is_none()) {
    const IntSequence<int32_t> t(*decodes_page_table, "decodes_page_table");
    PAGEDKV_CHECK_ARG(t.ndim() == 2,
                      "decodes_page_table must be 2-D [batch, pages_per_sequence], got {} dims",
                      t.ndim());
    cols = static_cast<int32_t>(t.shape()[1]);
  }
  return PagedAttentionMetadata(prefill_length, to_vector(prefill_position, "prefill_position"),
                                to_vector(prefill_page_table, "prefill_page_table"),
                                to_vector(decodes_position, "decodes_position"),
                                to_vector(decodes_page_table, "decodes_page_table"), cols);
}

py::array_t<int32_t> decodes_page_table(const PagedAttentionMetadata& md) {
  return to_numpy(md.decodes_page_table())
      .reshape({static_cast<py::ssize_t>(md.decodes_batch_size()),
                static_cast<py::ssize_t>(md.decodes_pages_per_sequence())});
}

void bind_attention_metadata(py::module_& m) {
  using MD = PagedAttentionMetadata;
  py::class_<MD>(m, "PagedAttentionMetadata",
                 "Per-step prefill/decode positions and page tables (seed 004). "
                 "decodes_page_table is [batch, pages_per_sequence].")
      .def(py::init(&make_metadata), py::arg("prefill_length") = 0,
           py::arg("prefill_position") = py::none(), py::arg("prefill_page_table") = py::none(),
           py::arg("decodes_position") = py::none(), py::arg("decodes_page_table") = py::none())
      .def_static("init_empty", &MD::init_empty)
      .def("is_prefill_mode", &MD::is_prefill_mode,
           "is_prefill_mode() -> bool: a prefill part and no decodes.")
      .def("is_decode_mode", &MD::is_decode_mode,
           "is_decode_mode() -> bool: decodes and no prefill part.")
      .def("is_mixed_mode", &MD::is_mixed_mode, "is_mixed_mode() -> bool: both parts.")
      .def("is_empty", &MD::is_empty, "is_empty() -> bool: neither part.")
      .def_property_readonly("prefill_length", &MD::prefill_length)
      .def_property_readonly("prefill_position",
                             [](const MD& md) { return to_numpy(md.prefill_position()); })
      .def_property_readonly("prefill_page_table",
                             [](const MD& md) { return to_numpy(md.prefill_page_table()); })
      .def_property_readonly("decodes_position",
                             [](const MD& md) { return to_numpy(md.decodes_position()); })
      .def_property_readonly("decodes_page_table", &decodes_page_table);
}

// ---- kv_cache_update and its slices ----------------------------------------------------

py::array kv_cache_update_py(py::array new_kv_tokens, py::object slice_indices_obj,
                             py::array kv_cache_pages, py::object total_update_slices,
                             int32_t page_size) {
  const IntSequence<int32_t> slice_indices(slice_indices_obj, "slice_indices");
  const ConstTokenTensor src = input_tensor(new_kv_tokens, "new_kv_tokens");
  PAGEDKV_CHECK_ARG(kv_cache_pages.ndim() == 3,
                    "kv_cache_pages must be 3-D [slots, heads, dim], got {} dims",
                    kv_cache_pages.ndim());
  PAGEDKV_CHECK_ARG((kv_cache_pages.flags() & py::array::c_style) && kv_cache_pages.writeable(),
                    "kv_cache_pages must be a writable C-contiguous array (updated in place)");
  PAGEDKV_CHECK_ARG(slice_indices.ndim() == 2 && slice_indices.shape()[0] == 3,
                    "slice_indices must be [3, num_slices]");
  const TokenTensor dst{kv_cache_pages.mutable_data(), dtype_of(kv_cache_pages, "kv_cache_pages"),
                        static_cast<int64_t>(kv_cache_pages.shape(0)),
                        static_cast<int32_t>(kv_cache_pages.shape(1)),
                        static_cast<int32_t>(kv_cache_pages.shape(2))};
  const int64_t total = as_count(total_update_slices, "total_update_slices");
  {
    py::gil_scoped_release release;
    kv_cache_update(src, slice_indices.span(), dst, total, page_size);
  }
  return kv_cache_pages;
}

py::tuple build_update_slices_py(py::object page_table_obj, py::object cache_positions_obj,
                                 py::object num_new_tokens_obj, int32_t page_size,
                                 std::optional<int64_t> capacity) {
  const IntSequence<int32_t> page_table(page_table_obj, "page_table");
  const IntSequence<int32_t> cache_positions(cache_positions_obj, "cache_positions");
  const IntSequence<int32_t> num_new_tokens(num_new_tokens_obj, "num_new_tokens");
  PAGEDKV_CHECK_ARG(page_table.ndim() == 2, "page_table must be 2-D [num_seqs, pages]");
  const std::span<const int32_t> pos = cache_positions.span();
  const std::span<const int32_t> cnt = num_new_tokens.span();
  const int64_t cap = capacity.value_or(count_update_slices(pos, cnt, page_size));
  PAGEDKV_CHECK_ARG(cap >= 0, "capacity must be >= 0, got {}", cap);
  py::array_t<int32_t> slices({py::ssize_t{3}, static_cast<py::ssize_t>(cap)});
  const int64_t n = build_update_slices(
      page_table.span(), static_cast<int32_t>(page_table.shape()[1]), pos, cnt, page_size,
      std::span<int32_t>(slices.mutable_data(), static_cast<size_t>(slices.size())));
  return py::make_tuple(slices, n);
}

void bind_kv_cache_update(py::module_& m) {
  m.def("kv_cache_update", &kv_cache_update_py, py::arg("new_kv_tokens"), py::arg("slice_indices"),
        py::arg("kv_cache_pages"), py::arg("total_update_slices"), py::arg("page_size") = 32,
        "Seed 003's kv_cache_update, in place on kv_cache_pages (also returned).");
  m.def("build_update_slices", &build_update_slices_py, py::arg("page_table"),
        py::arg("cache_positions"), py::arg("num_new_tokens"), py::arg("page_size"),
        py::arg("capacity") = py::none(),
        "Returns (slice_indices [3, capacity] int32, num_slices) for kv_cache_update.");
}

// ---- writes through PagedAttentionMetadata ---------------------------------------------

void write_prefill_py(const PagedKVCache& cache, int32_t layer, py::array key, py::array value,
                      const PagedAttentionMetadata& md) {
  const PagedKVView v = cache.view(layer);
  const ConstTokenTensor k = input_tensor(key, "key");
  const ConstTokenTensor vv = input_tensor(value, "value");
  py::gil_scoped_release release;
  write_prefill_to_cache(v, k, vv, md);
}

void write_decodes_py(const PagedKVCache& cache, int32_t layer, py::array key, py::array value,
                      const PagedAttentionMetadata& md) {
  const PagedKVView v = cache.view(layer);
  const ConstTokenTensor k = input_tensor(key, "key");
  const ConstTokenTensor vv = input_tensor(value, "value");
  py::gil_scoped_release release;
  write_decodes_to_cache(v, k, vv, md);
}

void bind_metadata_writes(py::module_& m) {
  m.def("write_prefill_to_cache", &write_prefill_py, py::arg("cache"), py::arg("layer"),
        py::arg("key"), py::arg("value"), py::arg("metadata"),
        "Seed 004's prefill write: key/value [padded_len, kv_heads, dim]; token i < "
        "metadata.prefill_length goes to position i through prefill_page_table.");
  m.def("write_decodes_to_cache", &write_decodes_py, py::arg("cache"), py::arg("layer"),
        py::arg("key"), py::arg("value"), py::arg("metadata"),
        "Seed 004's decode write: key/value [batch, kv_heads, dim]; row b goes to position "
        "decodes_position[b] (negative: skipped) through row b of decodes_page_table.");
}

// ---- the seed-002 HBMPageManager ---------------------------------------------------------

void bind_hbm_page_manager(py::module_& m) {
  py::class_<HBMPageManager>(m, "HBMPageManager",
                             "Plain HBM page allocator (no prefix caching); page 0 is the "
                             "dummy page.")
      .def(py::init<int32_t, int32_t>(), py::arg("num_pages"), py::arg("page_size"))
      .def_property_readonly("page_size", &HBMPageManager::page_size)
      .def_property_readonly("current_page_index", &HBMPageManager::current_page_index)
      .def_property_readonly("num_pages", &HBMPageManager::num_pages)
      .def_property_readonly("num_free_pages", &HBMPageManager::num_free_pages)
      .def("alloc_prefill_hbm_pages", &HBMPageManager::alloc_prefill_hbm_pages,
           py::arg("prompt_len"),
           "alloc_prefill_hbm_pages(prompt_len: int) -> list[int]: cdiv(prompt_len, page_size) "
           "pages.")
      .def("alloc_hbm_pages", &HBMPageManager::alloc_hbm_pages, py::arg("n"),
           "alloc_hbm_pages(n: int) -> list[int]")
      .def(
          "free_hbm_pages",
          [](HBMPageManager& mgr, py::handle pages) {
            mgr.free_hbm_pages(page_ids_arg(pages, "pages"));
          },
          py::arg("pages"), "free_hbm_pages(pages: Sequence[int]) -> None")
      .def("verify", &HBMPageManager::verify, "verify() -> None");
}

}  // namespace

void bind_compat(py::module_& m) {
  bind_hbm_page_manager(m);
  bind_attention_metadata(m);
  bind_kv_cache_update(m);
  bind_metadata_writes(m);
}

}  // namespace pagedkv::python
