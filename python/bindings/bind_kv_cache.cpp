// Python registration of the kv_cache component: PagedKVCacheMetadata, PagedKVCache (pages as
// zero-copy NumPy arrays) and write_slots. The seed-shaped APIs (kv_cache_update,
// PagedAttentionMetadata and the writes through it) are registered by bind_compat.cpp.
//
// NumPy dtypes: float32 <-> float32, float16 <-> float16, bfloat16 <-> uint16 (bit patterns),
// int8 <-> int8, fp8_e4m3 <-> uint8 (codes). Write inputs are float32, float16 or uint16
// (= bfloat16) arrays [tokens, num_kv_heads, head_dim]; non-contiguous inputs are copied.
#include <pybind11/numpy.h>
#include <pybind11/operators.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "bindings.h"
#include "int_sequence.h"
#include "numpy_arrays.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/kv_cache/kv_cache_write.h"
#include "pagedkv/kv_cache/paged_kv_cache.h"
#include "pagedkv/kv_cache/paged_kv_cache_metadata.h"

namespace py = pybind11;

namespace pagedkv::python {

namespace {

// An array [dims...] over cache memory that keeps `owner` (the PagedKVCache) alive.
py::array cache_array(DType t, std::vector<py::ssize_t> shape, void* data, py::handle owner) {
  return py::array(numpy_dtype(t), std::move(shape), data, owner);
}

// Key (or value) pages of one HND layer, over the cache's memory.
py::array hnd_pages(py::object self, int32_t layer, bool key) {
  const auto& c = self.cast<const PagedKVCache&>();
  const auto& md = c.metadata();
  return cache_array(md.dtype,
                     {md.num_kv_heads, static_cast<py::ssize_t>(md.num_pages_per_layer),
                      md.page_size, md.kv_head_dim_size},
                     key ? c.key_pages(layer) : c.value_pages(layer), self);
}

// The combined K/V array of one NHD layer, over the cache's memory.
py::array nhd_pages(py::object self, int32_t layer) {
  const auto& c = self.cast<const PagedKVCache&>();
  const auto& md = c.metadata();
  return cache_array(
      md.dtype, {static_cast<py::ssize_t>(c.num_slots()), 2 * md.num_kv_heads, md.kv_head_dim_size},
      c.kv_pages(layer), self);
}

// The int8 scales of one layer's K (or V): [kv_heads, pages, page_size] (HND) or
// [slots, kv_heads] (NHD), over the cache's memory.
py::array scales(py::object self, int32_t layer, bool key) {
  const auto& c = self.cast<const PagedKVCache&>();
  const auto& md = c.metadata();
  std::vector<py::ssize_t> shape =
      md.layout == KVLayout::kHND
          ? std::vector<py::ssize_t>{md.num_kv_heads,
                                     static_cast<py::ssize_t>(md.num_pages_per_layer), md.page_size}
          : std::vector<py::ssize_t>{static_cast<py::ssize_t>(c.num_slots()), md.num_kv_heads};
  return cache_array(DType::kFloat32, std::move(shape), key ? c.k_scales(layer) : c.v_scales(layer),
                     self);
}

PagedKVCacheMetadata create_metadata(int32_t batch_size, int32_t num_hidden_layers,
                                     int32_t max_sequences, int32_t page_size, int32_t num_kv_heads,
                                     int32_t kv_head_dim_size, double hbm_utilization,
                                     const std::string& dtype, const std::string& layout,
                                     uint64_t memory_budget_bytes) {
  PagedKVCacheConfig c;
  c.batch_size = batch_size;
  c.num_hidden_layers = num_hidden_layers;
  c.max_sequences = max_sequences;
  c.page_size = page_size;
  c.num_kv_heads = num_kv_heads;
  c.kv_head_dim_size = kv_head_dim_size;
  c.hbm_utilization = hbm_utilization;
  c.dtype = parse_dtype(dtype);
  c.layout = parse_kv_layout(layout);
  c.memory_budget_bytes = memory_budget_bytes;
  return PagedKVCacheMetadata::create(c);
}

void bind_metadata(py::module_& m) {
  using MD = PagedKVCacheMetadata;
  py::class_<MD>(m, "PagedKVCacheMetadata",
                 "Static shape of a paged KV cache (seed 004's PagedAttentionCacheMetaData); "
                 "build it with create().")
      .def_static("create", &create_metadata, py::arg("batch_size"), py::arg("num_hidden_layers"),
                  py::arg("max_sequences"), py::arg("page_size"), py::arg("num_kv_heads"),
                  py::arg("kv_head_dim_size"), py::arg("hbm_utilization") = 0.9,
                  py::arg("dtype") = "bfloat16", py::arg("layout") = "HND",
                  py::arg("memory_budget_bytes") = 0,
                  "Sizes num_pages_per_layer = floor(budget * hbm_utilization / bytes of one "
                  "page over all layers); memory_budget_bytes=0 uses the physical memory.")
      .def_static("physical_memory_bytes", &MD::physical_memory_bytes)
      .def_static("from_json", [](const std::string& s) { return MD::from_json(s); })
      .def("to_json", &MD::to_json,
           "to_json() -> str: every field as JSON; from_json(to_json()) round-trips exactly.")
      .def("validate", &MD::validate, "validate() -> None: ValueError naming the first bad field.")
      .def_readonly("batch_size", &MD::batch_size)
      .def_readonly("num_hidden_layers", &MD::num_hidden_layers)
      .def_readonly("num_pages_per_layer", &MD::num_pages_per_layer)
      .def_readonly("num_pages_per_sequence", &MD::num_pages_per_sequence)
      .def_readonly("max_sequences", &MD::max_sequences)
      .def_readonly("page_size", &MD::page_size)
      .def_readonly("num_kv_heads", &MD::num_kv_heads)
      .def_readonly("kv_head_dim_size", &MD::kv_head_dim_size)
      .def_readonly("hbm_utilization", &MD::hbm_utilization)
      .def_property_readonly("memory_utilization", &MD::memory_utilization)
      .def_property_readonly("dtype",
                             [](const MD& md) { return std::string(dtype_name(md.dtype)); })
      .def_property_readonly("layout",
                             [](const MD& md) { return std::string(kv_layout_name(md.layout)); })
      .def("bytes_per_page_per_layer", &MD::bytes_per_page_per_layer,
           "bytes_per_page_per_layer() -> int: K and V bytes of one page of one layer (scales "
           "included).")
      .def("total_bytes", &MD::total_bytes,
           "total_bytes() -> int: the cache's bytes over every layer.")
      .def(py::self == py::self)
      .def("__repr__", [](const MD& md) { return "PagedKVCacheMetadata(" + md.to_json() + ")"; });
}

void bind_cache(py::module_& m) {
  py::class_<PagedKVCache>(m, "PagedKVCache",
                           "Paged K/V storage for every layer; page arrays are zero-copy NumPy "
                           "views that keep the cache alive.")
      .def(py::init<const PagedKVCacheMetadata&>(), py::arg("metadata"))
      .def_property_readonly("metadata", &PagedKVCache::metadata)
      .def_property_readonly("num_layers", &PagedKVCache::num_layers)
      .def_property_readonly("num_pages", &PagedKVCache::num_pages)
      .def_property_readonly("num_slots", &PagedKVCache::num_slots)
      .def_property_readonly("k_scale", &PagedKVCache::k_scale)
      .def_property_readonly("v_scale", &PagedKVCache::v_scale)
      .def("set_fp8_scales", &PagedKVCache::set_fp8_scales, py::arg("k_scale"), py::arg("v_scale"),
           "set_fp8_scales(k_scale: float, v_scale: float) -> None: the per-tensor scales of an "
           "fp8_e4m3 cache (finite, > 0).")
      .def("mapped_bytes", &PagedKVCache::mapped_bytes,
           "mapped_bytes() -> int: bytes of memory the cache reserved (mapped lazily).")
      .def("verify", &PagedKVCache::verify,
           "verify() -> None: checks the cache's invariants (AssertionError).")
      .def(
          "key_pages", [](py::object self, int32_t layer) { return hnd_pages(self, layer, true); },
          py::arg("layer"), "[num_kv_heads, num_pages, page_size, head_dim] (HND caches)")
      .def(
          "value_pages",
          [](py::object self, int32_t layer) { return hnd_pages(self, layer, false); },
          py::arg("layer"), "[num_kv_heads, num_pages, page_size, head_dim] (HND caches)")
      .def("kv_pages", &nhd_pages, py::arg("layer"),
           "[num_pages * page_size, 2 * num_kv_heads, head_dim], K/V interleaved (NHD caches)")
      .def(
          "k_scales", [](py::object self, int32_t layer) { return scales(self, layer, true); },
          py::arg("layer"), "int8 caches: per (slot, head) K scales")
      .def(
          "v_scales", [](py::object self, int32_t layer) { return scales(self, layer, false); },
          py::arg("layer"), "int8 caches: per (slot, head) V scales");
}

void write_slots_py(const PagedKVCache& cache, int32_t layer, py::array key, py::array value,
                    py::object slot_mapping_obj) {
  const IntSequence<int64_t> slot_mapping(slot_mapping_obj, "slot_mapping");
  const PagedKVView v = cache.view(layer);
  const ConstTokenTensor k = input_tensor(key, "key");
  const ConstTokenTensor vv = input_tensor(value, "value");
  PAGEDKV_CHECK_ARG(slot_mapping.ndim() == 1, "slot_mapping must be 1-D");
  py::gil_scoped_release release;
  write_slots(v, k, vv, slot_mapping.span());
}

void bind_writes(py::module_& m) {
  m.def("write_slots", &write_slots_py, py::arg("cache"), py::arg("layer"), py::arg("key"),
        py::arg("value"), py::arg("slot_mapping"),
        "Writes token t to slot slot_mapping[t] (= page * page_size + offset; negative skips).");
}

}  // namespace

void bind_kv_cache(py::module_& m) {
  bind_metadata(m);
  bind_cache(m);
  bind_writes(m);
}

}  // namespace pagedkv::python
