// Python registration of paged attention: pagedkv.paged_attention over NumPy arrays, reading
// either a PagedKVCache layer or caller-owned page arrays.
//
// NumPy dtypes of cache arrays: float32, float16, uint16 (bfloat16 bits), int8, uint8
// (fp8_e4m3 codes). Queries: float32 or uint16 (bfloat16 bits). Output: float32.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "bindings.h"
#include "int_sequence.h"
#include "numpy_arrays.h"
#include "pagedkv/attention/paged_attention.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/kv_cache/paged_kv_cache.h"

namespace py = pybind11;

namespace pagedkv::python {

namespace {

using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;

void require_contiguous(const py::array& a, const char* name) {
  PAGEDKV_CHECK_ARG((a.flags() & py::array::c_style) != 0,
                    "{} must be C-contiguous (cache arrays are read in place)", name);
}

// Scales of an int8 cache: float32, `expected` elements, contiguous.
float* scale_array(const std::optional<py::array>& a, const char* name, int64_t expected) {
  PAGEDKV_CHECK_ARG(a.has_value(), "an int8 cache needs {}", name);
  PAGEDKV_CHECK_ARG(a->dtype().kind() == 'f' && a->dtype().itemsize() == 4, "{} must be float32",
                    name);
  require_contiguous(*a, name);
  PAGEDKV_CHECK_ARG(a->size() == expected, "{} has {} elements, the cache needs {}", name,
                    a->size(), expected);
  return static_cast<float*>(const_cast<void*>(a->data()));
}

// A view over caller-owned arrays:
//   HND: key_pages and value_pages [num_kv_heads, num_pages, page_size, head_dim]
//   NHD: kv_pages [num_pages, page_size, 2 * num_kv_heads, head_dim], or
//        [num_pages * page_size, 2 * num_kv_heads, head_dim] with page_size given.
PagedKVView view_of_arrays(const py::array& kv, const std::optional<py::array>& value_pages,
                           std::optional<int32_t> page_size,
                           const std::optional<py::array>& k_scales,
                           const std::optional<py::array>& v_scales, float k_scale, float v_scale) {
  PagedKVView v;
  v.dtype = dtype_of(kv, "kv");
  require_contiguous(kv, "kv");
  if (value_pages) {
    v.layout = KVLayout::kHND;
    PAGEDKV_CHECK_ARG(kv.ndim() == 4,
                      "HND key pages must be 4-D [num_kv_heads, num_pages, page_size, head_dim], "
                      "got {} dims",
                      kv.ndim());
    PAGEDKV_CHECK_ARG(value_pages->ndim() == 4 && dtype_of(*value_pages, "value_pages") == v.dtype,
                      "value_pages must match the key pages' shape and dtype");
    for (int i = 0; i < 4; ++i)
      PAGEDKV_CHECK_ARG(value_pages->shape(i) == kv.shape(i),
                        "value_pages dim {} is {}, key pages have {}", i, value_pages->shape(i),
                        kv.shape(i));
    require_contiguous(*value_pages, "value_pages");
    v.num_kv_heads = static_cast<int32_t>(kv.shape(0));
    v.num_pages = kv.shape(1);
    v.page_size = static_cast<int32_t>(kv.shape(2));
    v.head_dim = static_cast<int32_t>(kv.shape(3));
    v.v_data = const_cast<void*>(value_pages->data());
  } else {
    v.layout = KVLayout::kNHD;
    if (kv.ndim() == 4) {
      v.num_pages = kv.shape(0);
      v.page_size = static_cast<int32_t>(kv.shape(1));
      PAGEDKV_CHECK_ARG(!page_size || *page_size == v.page_size,
                        "page_size {} contradicts the kv_pages shape (page size {})", *page_size,
                        v.page_size);
    } else {
      PAGEDKV_CHECK_ARG(kv.ndim() == 3,
                        "NHD kv pages must be [num_pages, page_size, 2 * num_kv_heads, head_dim] "
                        "or [slots, 2 * num_kv_heads, head_dim], got {} dims",
                        kv.ndim());
      PAGEDKV_CHECK_ARG(page_size.has_value() && *page_size > 0,
                        "3-D NHD kv pages need page_size > 0");
      PAGEDKV_CHECK_ARG(kv.shape(0) % *page_size == 0,
                        "{} slots are not a whole number of pages of {}", kv.shape(0), *page_size);
      v.page_size = *page_size;
      v.num_pages = kv.shape(0) / *page_size;
    }
    const py::ssize_t heads2 = kv.shape(kv.ndim() - 2);
    PAGEDKV_CHECK_ARG(heads2 % 2 == 0, "NHD kv pages hold 2 * num_kv_heads heads, got {}", heads2);
    v.num_kv_heads = static_cast<int32_t>(heads2 / 2);
    v.head_dim = static_cast<int32_t>(kv.shape(kv.ndim() - 1));
  }
  v.k_data = const_cast<void*>(kv.data());
  if (v.dtype == DType::kInt8) {
    const int64_t n = v.num_pages * v.page_size * v.num_kv_heads;
    v.k_scales = scale_array(k_scales, "k_scales", n);
    v.v_scales = scale_array(v_scales, "v_scales", n);
  }
  v.k_scale = k_scale;
  v.v_scale = v_scale;
  return v;
}

py::array_t<float> attention(const py::array& query, const py::object& kv,
                             const py::object& query_start_loc, const py::object& seq_lens,
                             const py::object& page_table, float scale,
                             std::optional<int32_t> sliding_window, std::optional<float> soft_cap,
                             int32_t layer, const std::optional<py::array>& value_pages,
                             std::optional<int32_t> page_size,
                             const std::optional<py::array>& k_scales,
                             const std::optional<py::array>& v_scales, float k_scale, float v_scale,
                             const std::optional<py::object>& page_indptr) {
  PagedKVView view;
  if (py::isinstance<PagedKVCache>(kv)) {
    view = kv.cast<const PagedKVCache&>().view(layer);
  } else {
    PAGEDKV_CHECK_ARG(py::isinstance<py::array>(kv),
                      "kv must be a PagedKVCache or a NumPy array of pages");
    view = view_of_arrays(kv.cast<py::array>(), value_pages, page_size, k_scales, v_scales, k_scale,
                          v_scale);
  }

  PAGEDKV_CHECK_ARG(query.ndim() == 3, "query must be 3-D [tokens, q_heads, head_dim], got {} dims",
                    query.ndim());
  const char qk = query.dtype().kind();
  const py::ssize_t qs = query.dtype().itemsize();
  PAGEDKV_CHECK_ARG((qk == 'f' && qs == 4) || (qk == 'u' && qs == 2),
                    "query must be float32 or uint16 (bfloat16 bits)");
  const py::array q = py::array::ensure(query, py::array::c_style);
  const IntSequence<int32_t> qsl(query_start_loc, "query_start_loc");
  const IntSequence<int32_t> lens(seq_lens, "seq_lens");
  const IntSequence<int32_t> table(page_table, "page_table");
  PAGEDKV_CHECK_ARG(qsl.ndim() == 1 && lens.ndim() == 1,
                    "query_start_loc and seq_lens must be 1-D");
  std::optional<IntSequence<int32_t>> indptr;
  PageTableRef pages;
  if (page_indptr) {
    indptr.emplace(*page_indptr, "page_indptr");
    PAGEDKV_CHECK_ARG(indptr->ndim() == 1 && table.ndim() == 1,
                      "with page_indptr, page_table holds the 1-D page indices");
    pages = PageTableRef::csr(indptr->span(), table.span());
  } else {
    PAGEDKV_CHECK_ARG(table.ndim() == 2,
                      "page_table must be 2-D [num_seqs, max_pages], got {} dims", table.ndim());
    pages = PageTableRef::dense(table.span(), static_cast<int32_t>(table.shape()[1]));
  }

  const ConstTokenTensor aq{q.data(), qk == 'f' ? DType::kFloat32 : DType::kBFloat16,
                            static_cast<int64_t>(q.shape(0)), static_cast<int32_t>(q.shape(1)),
                            static_cast<int32_t>(q.shape(2))};
  const AttentionBatch batch{qsl.span(), lens.span(), pages};
  AttentionOptions opt;
  opt.scale = scale;
  opt.sliding_window = sliding_window.value_or(0);
  opt.soft_cap = soft_cap.value_or(0.0f);
  py::array_t<float> out({q.shape(0), q.shape(1), q.shape(2)});
  {
    py::gil_scoped_release release;
    paged_attention(view, aq, batch, opt, {out.mutable_data(), static_cast<size_t>(out.size())});
  }
  return out;
}

}  // namespace

void bind_attention(py::module_& m) {
  m.attr("ATTENTION_KV_CHUNK") = kAttentionKvChunk;
  m.def("paged_attention", &attention, py::arg("query"), py::arg("kv"), py::arg("query_start_loc"),
        py::arg("seq_lens"), py::arg("page_table"), py::arg("scale"),
        py::arg("sliding_window") = py::none(), py::arg("soft_cap") = py::none(), py::kw_only(),
        py::arg("layer") = 0, py::arg("value_pages") = py::none(),
        py::arg("page_size") = py::none(), py::arg("k_scales") = py::none(),
        py::arg("v_scales") = py::none(), py::arg("k_scale") = 1.0f, py::arg("v_scale") = 1.0f,
        py::arg("page_indptr") = py::none(),
        R"doc(Causal paged attention of a ragged batch; returns float32 [tokens, q_heads, head_dim].

query            float32 or uint16 (bfloat16 bits) [tokens, q_heads, head_dim]
kv               a PagedKVCache (reads layer `layer`), or NumPy pages:
                   HND: key pages [kv_heads, num_pages, page_size, head_dim] with
                        value_pages= of the same shape;
                   NHD: [num_pages, page_size, 2 * kv_heads, head_dim] (K/V interleaved), or
                        [slots, 2 * kv_heads, head_dim] with page_size=.
                 int8 pages need k_scales= / v_scales= (float32, one per slot and head);
                 uint8 (fp8_e4m3) pages use k_scale= / v_scale=.
query_start_loc  int32 [B + 1]; request b's tokens are [qsl[b], qsl[b+1])
seq_lens         int32 [B]; context length including the new tokens (the LAST q_len positions)
page_table       int32 [B, max_pages], or the 1-D page indices when page_indptr= [B + 1] is given
scale            softmax scale; sliding_window: keys in (pos - w, pos]; soft_cap: cap * tanh(s / cap)
Errors: ValueError (shapes, dtypes, options), IndexError (a page id outside the cache).)doc");
}

}  // namespace pagedkv::python
