// Python registration of the kv_cache component: PagedKVCacheMetadata, PagedKVCache (pages as
// zero-copy NumPy arrays), PagedAttentionMetadata and the cache writes.
//
// NumPy dtypes: float32 <-> float32, float16 <-> float16, bfloat16 <-> uint16 (bit patterns),
// int8 <-> int8, fp8_e4m3 <-> uint8 (codes). Write inputs are float32, float16 or uint16
// (= bfloat16) arrays [tokens, num_kv_heads, head_dim]; non-contiguous inputs are copied.
#include <pybind11/numpy.h>
#include <pybind11/operators.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings.h"
#include "numpy_arrays.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/compat/kv_cache_update.h"
#include "pagedkv/compat/metadata_write.h"
#include "pagedkv/compat/paged_attention_metadata.h"
#include "pagedkv/kv_cache/kv_cache_write.h"
#include "pagedkv/kv_cache/paged_kv_cache.h"
#include "pagedkv/kv_cache/paged_kv_cache_metadata.h"

namespace py = pybind11;

namespace pagedkv::python {

namespace {

// A C-contiguous 3-D input (copied if it is not contiguous).
ConstTokenTensor input_tensor(py::array& a, const char* name) {
  PAGEDKV_CHECK_ARG(a.ndim() == 3, "{} must be 3-D [tokens, heads, dim], got {} dims", name,
                    a.ndim());
  if (!(a.flags() & py::array::c_style)) a = py::array::ensure(a, py::array::c_style);
  return {a.data(), dtype_of(a, name), static_cast<int64_t>(a.shape(0)),
          static_cast<int32_t>(a.shape(1)), static_cast<int32_t>(a.shape(2))};
}

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


// The int8 scales of one layer's K (or V): [kv_heads, pages, page_size] (HND) or
// [slots, kv_heads] (NHD), over the cache's memory.
py::array scales(py::object self, int32_t layer, bool key) {
  const auto& c = self.cast<const PagedKVCache&>();
  const auto& md = c.metadata();
  std::vector<py::ssize_t> shape =
      md.layout == KVLayout::kHND
          ? std::vector<py::ssize_t>{md.num_kv_heads,
                                     static_cast<py::ssize_t>(md.num_pages_per_layer),
                                     md.page_size}
          : std::vector<py::ssize_t>{static_cast<py::ssize_t>(c.num_slots()), md.num_kv_heads};
  return cache_array(DType::kFloat32, std::move(shape),
                     key ? c.k_scales(layer) : c.v_scales(layer), self);
}

int64_t as_count(const py::object& o, const char* name) {
  if (py::isinstance<py::array>(o)) {
    auto a = int_array<int64_t>(o, name);
    PAGEDKV_CHECK_ARG(a && a.size() == 1, "{} must be a scalar or a 1-element array", name);
    return *a.data();
  }
  return o.cast<int64_t>();
}

std::vector<int32_t> to_vector(const std::optional<py::object>& o, const char* name) {
  if (!o || o->is_none()) return {};
  const auto a = int_array<int32_t>(*o, name);
  return std::vector<int32_t>(a.data(), a.data() + a.size());
}

template <class T>
py::array_t<T> to_numpy(const std::vector<T>& v) {
  return py::array_t<T>(static_cast<py::ssize_t>(v.size()), v.data());
}

}  // namespace

void bind_kv_cache(py::module_& m) {
  // ---- metadata ------------------------------------------------------------------------
  py::class_<PagedKVCacheMetadata>(m, "PagedKVCacheMetadata",
                                   "Static shape of a paged KV cache (seed 004's "
                                   "PagedAttentionCacheMetaData); build it with create().")
      .def_static(
          "create",
          [](int32_t batch_size, int32_t num_hidden_layers, int32_t max_sequences,
             int32_t page_size, int32_t num_kv_heads, int32_t kv_head_dim_size,
             double hbm_utilization, const std::string& dtype, const std::string& layout,
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
          },
          py::arg("batch_size"), py::arg("num_hidden_layers"), py::arg("max_sequences"),
          py::arg("page_size"), py::arg("num_kv_heads"), py::arg("kv_head_dim_size"),
          py::arg("hbm_utilization") = 0.9, py::arg("dtype") = "bfloat16",
          py::arg("layout") = "HND", py::arg("memory_budget_bytes") = 0,
          "Sizes num_pages_per_layer = floor(budget * hbm_utilization / bytes of one page over "
          "all layers); memory_budget_bytes=0 uses the physical memory.")
      .def_static("physical_memory_bytes", &PagedKVCacheMetadata::physical_memory_bytes)
      .def_static("from_json",
                  [](const std::string& s) { return PagedKVCacheMetadata::from_json(s); })
      .def("to_json", &PagedKVCacheMetadata::to_json)
      .def("validate", &PagedKVCacheMetadata::validate)
      .def_readonly("batch_size", &PagedKVCacheMetadata::batch_size)
      .def_readonly("num_hidden_layers", &PagedKVCacheMetadata::num_hidden_layers)
      .def_readonly("num_pages_per_layer", &PagedKVCacheMetadata::num_pages_per_layer)
      .def_readonly("num_pages_per_sequence", &PagedKVCacheMetadata::num_pages_per_sequence)
      .def_readonly("max_sequences", &PagedKVCacheMetadata::max_sequences)
      .def_readonly("page_size", &PagedKVCacheMetadata::page_size)
      .def_readonly("num_kv_heads", &PagedKVCacheMetadata::num_kv_heads)
      .def_readonly("kv_head_dim_size", &PagedKVCacheMetadata::kv_head_dim_size)
      .def_readonly("hbm_utilization", &PagedKVCacheMetadata::hbm_utilization)
      .def_property_readonly("memory_utilization", &PagedKVCacheMetadata::memory_utilization)
      .def_property_readonly(
          "dtype", [](const PagedKVCacheMetadata& md) { return std::string(dtype_name(md.dtype)); })
      .def_property_readonly(
          "layout",
          [](const PagedKVCacheMetadata& md) { return std::string(kv_layout_name(md.layout)); })
      .def("bytes_per_page_per_layer", &PagedKVCacheMetadata::bytes_per_page_per_layer)
      .def("total_bytes", &PagedKVCacheMetadata::total_bytes)
      .def(py::self == py::self)
      .def("__repr__", [](const PagedKVCacheMetadata& md) {
        return "PagedKVCacheMetadata(" + md.to_json() + ")";
      });

  // ---- cache ---------------------------------------------------------------------------
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
      .def("set_fp8_scales", &PagedKVCache::set_fp8_scales, py::arg("k_scale"), py::arg("v_scale"))
      .def("mapped_bytes", &PagedKVCache::mapped_bytes)
      .def("verify", &PagedKVCache::verify)
      .def(
          "key_pages", [](py::object self, int32_t layer) { return hnd_pages(self, layer, true); },
          py::arg("layer"), "[num_kv_heads, num_pages, page_size, head_dim] (HND caches)")
      .def(
          "value_pages",
          [](py::object self, int32_t layer) { return hnd_pages(self, layer, false); },
          py::arg("layer"), "[num_kv_heads, num_pages, page_size, head_dim] (HND caches)")
      .def(
          "kv_pages",
          [](py::object self, int32_t layer) {
            const auto& c = self.cast<const PagedKVCache&>();
            const auto& md = c.metadata();
            return cache_array(
                md.dtype,
                {static_cast<py::ssize_t>(c.num_slots()), 2 * md.num_kv_heads, md.kv_head_dim_size},
                c.kv_pages(layer), self);
          },
          py::arg("layer"),
          "[num_pages * page_size, 2 * num_kv_heads, head_dim], K/V interleaved (NHD caches)")
      .def(
          "k_scales", [](py::object self, int32_t layer) { return scales(self, layer, true); },
          py::arg("layer"), "int8 caches: per (slot, head) K scales")
      .def(
          "v_scales", [](py::object self, int32_t layer) { return scales(self, layer, false); },
          py::arg("layer"), "int8 caches: per (slot, head) V scales");

  // ---- attention metadata --------------------------------------------------------------
  using I32 = py::array_t<int32_t, py::array::c_style>;
  py::class_<PagedAttentionMetadata>(m, "PagedAttentionMetadata",
                                     "Per-step prefill/decode positions and page tables (seed "
                                     "004). decodes_page_table is [batch, pages_per_sequence].")
      .def(py::init([](int32_t prefill_length, std::optional<py::object> prefill_position,
                       std::optional<py::object> prefill_page_table,
                       std::optional<py::object> decodes_position,
                       std::optional<py::object> decodes_page_table) {
             int32_t cols = 0;
             if (decodes_page_table && !decodes_page_table->is_none()) {
               const auto t = int_array<int32_t>(*decodes_page_table, "decodes_page_table");
               PAGEDKV_CHECK_ARG(t.ndim() == 2,
                                 "decodes_page_table must be 2-D [batch, pages_per_sequence], "
                                 "got {} dims",
                                 t.ndim());
               cols = static_cast<int32_t>(t.shape(1));
             }
             return PagedAttentionMetadata(
                 prefill_length, to_vector(prefill_position, "prefill_position"),
                 to_vector(prefill_page_table, "prefill_page_table"),
                 to_vector(decodes_position, "decodes_position"),
                 to_vector(decodes_page_table, "decodes_page_table"), cols);
           }),
           py::arg("prefill_length") = 0, py::arg("prefill_position") = py::none(),
           py::arg("prefill_page_table") = py::none(), py::arg("decodes_position") = py::none(),
           py::arg("decodes_page_table") = py::none())
      .def_static("init_empty", &PagedAttentionMetadata::init_empty)
      .def("is_prefill_mode", &PagedAttentionMetadata::is_prefill_mode)
      .def("is_decode_mode", &PagedAttentionMetadata::is_decode_mode)
      .def("is_mixed_mode", &PagedAttentionMetadata::is_mixed_mode)
      .def("is_empty", &PagedAttentionMetadata::is_empty)
      .def_property_readonly("prefill_length", &PagedAttentionMetadata::prefill_length)
      .def_property_readonly(
          "prefill_position",
          [](const PagedAttentionMetadata& md) { return to_numpy(md.prefill_position()); })
      .def_property_readonly(
          "prefill_page_table",
          [](const PagedAttentionMetadata& md) { return to_numpy(md.prefill_page_table()); })
      .def_property_readonly(
          "decodes_position",
          [](const PagedAttentionMetadata& md) { return to_numpy(md.decodes_position()); })
      .def_property_readonly("decodes_page_table", [](const PagedAttentionMetadata& md) {
        return to_numpy(md.decodes_page_table())
            .reshape({static_cast<py::ssize_t>(md.decodes_batch_size()),
                      static_cast<py::ssize_t>(md.decodes_pages_per_sequence())});
      });

  // ---- writes --------------------------------------------------------------------------
  m.def(
      "kv_cache_update",
      [](py::array new_kv_tokens, py::object slice_indices_obj, py::array kv_cache_pages,
         py::object total_update_slices, int32_t page_size) {
        const I32 slice_indices = int_array<int32_t>(slice_indices_obj, "slice_indices");
        const ConstTokenTensor src = input_tensor(new_kv_tokens, "new_kv_tokens");
        PAGEDKV_CHECK_ARG(kv_cache_pages.ndim() == 3,
                          "kv_cache_pages must be 3-D [slots, heads, dim], got {} dims",
                          kv_cache_pages.ndim());
        PAGEDKV_CHECK_ARG(
            (kv_cache_pages.flags() & py::array::c_style) && kv_cache_pages.writeable(),
            "kv_cache_pages must be a writable C-contiguous array (updated in "
            "place)");
        PAGEDKV_CHECK_ARG(slice_indices.ndim() == 2 && slice_indices.shape(0) == 3,
                          "slice_indices must be [3, num_slices]");
        const TokenTensor dst{kv_cache_pages.mutable_data(),
                              dtype_of(kv_cache_pages, "kv_cache_pages"),
                              static_cast<int64_t>(kv_cache_pages.shape(0)),
                              static_cast<int32_t>(kv_cache_pages.shape(1)),
                              static_cast<int32_t>(kv_cache_pages.shape(2))};
        const int64_t total = as_count(total_update_slices, "total_update_slices");
        {
          py::gil_scoped_release release;
          kv_cache_update(src,
                          std::span<const int32_t>(slice_indices.data(),
                                                   static_cast<size_t>(slice_indices.size())),
                          dst, total, page_size);
        }
        return kv_cache_pages;
      },
      py::arg("new_kv_tokens"), py::arg("slice_indices"), py::arg("kv_cache_pages"),
      py::arg("total_update_slices"), py::arg("page_size") = 32,
      "Seed 003's kv_cache_update, in place on kv_cache_pages (also returned).");

  m.def(
      "build_update_slices",
      [](py::object page_table_obj, py::object cache_positions_obj, py::object num_new_tokens_obj,
         int32_t page_size, std::optional<int64_t> capacity) {
        const I32 page_table = int_array<int32_t>(page_table_obj, "page_table");
        const I32 cache_positions = int_array<int32_t>(cache_positions_obj, "cache_positions");
        const I32 num_new_tokens = int_array<int32_t>(num_new_tokens_obj, "num_new_tokens");
        PAGEDKV_CHECK_ARG(page_table.ndim() == 2, "page_table must be 2-D [num_seqs, pages]");
        const std::span<const int32_t> pos(cache_positions.data(),
                                           static_cast<size_t>(cache_positions.size()));
        const std::span<const int32_t> cnt(num_new_tokens.data(),
                                           static_cast<size_t>(num_new_tokens.size()));
        const int64_t cap = capacity.value_or(count_update_slices(pos, cnt, page_size));
        PAGEDKV_CHECK_ARG(cap >= 0, "capacity must be >= 0, got {}", cap);
        py::array_t<int32_t> slices({py::ssize_t{3}, static_cast<py::ssize_t>(cap)});
        const int64_t n = build_update_slices(
            std::span<const PageId>(page_table.data(), static_cast<size_t>(page_table.size())),
            static_cast<int32_t>(page_table.shape(1)), pos, cnt, page_size,
            std::span<int32_t>(slices.mutable_data(), static_cast<size_t>(slices.size())));
        return py::make_tuple(slices, n);
      },
      py::arg("page_table"), py::arg("cache_positions"), py::arg("num_new_tokens"),
      py::arg("page_size"), py::arg("capacity") = py::none(),
      "Returns (slice_indices [3, capacity] int32, num_slices) for kv_cache_update.");

  m.def(
      "write_slots",
      [](const PagedKVCache& cache, int32_t layer, py::array key, py::array value,
         py::object slot_mapping_obj) {
        const auto slot_mapping = int_array<int64_t>(slot_mapping_obj, "slot_mapping");
        const PagedKVView v = cache.view(layer);
        const ConstTokenTensor k = input_tensor(key, "key");
        const ConstTokenTensor vv = input_tensor(value, "value");
        PAGEDKV_CHECK_ARG(slot_mapping.ndim() == 1, "slot_mapping must be 1-D");
        py::gil_scoped_release release;
        write_slots(v, k, vv,
                    std::span<const int64_t>(slot_mapping.data(),
                                             static_cast<size_t>(slot_mapping.size())));
      },
      py::arg("cache"), py::arg("layer"), py::arg("key"), py::arg("value"), py::arg("slot_mapping"),
      "Writes token t to slot slot_mapping[t] (= page * page_size + offset; negative skips).");

  // Seed 004's per-layer writes: key/value [tokens, kv_heads, dim] through the step metadata.
  using MetadataWrite = void (*)(const PagedKVView&, ConstTokenTensor, ConstTokenTensor,
                                 const PagedAttentionMetadata&);
  for (const auto& [name, write] : {std::pair<const char*, MetadataWrite>{
                                        "write_prefill_to_cache", &write_prefill_to_cache},
                                    std::pair<const char*, MetadataWrite>{
                                        "write_decodes_to_cache", &write_decodes_to_cache}}) {
    m.def(
        name,
        [write = write](const PagedKVCache& cache, int32_t layer, py::array key, py::array value,
                        const PagedAttentionMetadata& md) {
          const PagedKVView v = cache.view(layer);
          const ConstTokenTensor k = input_tensor(key, "key");
          const ConstTokenTensor vv = input_tensor(value, "value");
          py::gil_scoped_release release;
          write(v, k, vv, md);
        },
        py::arg("cache"), py::arg("layer"), py::arg("key"), py::arg("value"),
        py::arg("metadata"));
  }
}

}  // namespace pagedkv::python
