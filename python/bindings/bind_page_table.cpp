// PageTable, MultiGroupPageTable and the batch layouts (slot mapping, FlashInfer export).
// Table contents are exposed as read-only NumPy views over the C++ buffers (no copies); each
// view's base is the table's Python object, so a view keeps its table alive.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "arguments.h"
#include "bindings.h"
#include "int_sequence.h"
#include "pagedkv/page_table/batch_layout.h"
#include "pagedkv/page_table/multi_group_page_table.h"
#include "pagedkv/page_table/page_table.h"

namespace py = pybind11;

namespace pagedkv::python {
namespace {

// A read-only int32 NumPy array over `data` with the given shape; `owner` is its base.
py::array readonly_view(const int32_t* data, std::vector<py::ssize_t> shape, py::handle owner) {
  py::array view(py::dtype::of<int32_t>(), std::move(shape), {}, data, owner);
  view.attr("setflags")(py::arg("write") = false);
  return view;
}

// One-dimensional int32 input (IntSequence<int32_t>, checked for one dimension).
IntSequence<int32_t> ids_1d(py::handle obj, const char* name) {
  IntSequence<int32_t> in(obj, name);
  in.require_ndim(1);
  return in;
}

// A writable, C-contiguous, one-dimensional output array of exactly dtype T.
template <typename T>
std::span<T> out_span(py::array_t<T, py::array::c_style>& arr, const char* name) {
  if (arr.ndim() != 1) throw py::value_error(std::string(name) + " must be one-dimensional");
  if (!arr.writeable()) throw py::value_error(std::string(name) + " is read-only");
  return {arr.mutable_data(), static_cast<size_t>(arr.size())};
}

using I64Out = py::array_t<int64_t, py::array::c_style>;
using I32Out = py::array_t<int32_t, py::array::c_style>;

py::array cpu_view(const py::object& self) {
  const auto& t = self.cast<const PageTable&>();
  const PageTableView v = t.get_cpu_tensor();
  return readonly_view(v.data, {v.num_rows, v.num_cols}, self);
}

py::array device_view(const py::object& self) {
  const auto& t = self.cast<const PageTable&>();
  const PageTableView v = t.get_device_tensor();
  return readonly_view(v.data, {v.num_rows, v.num_cols}, self);
}

void bind_page_table_class(py::module_& m) {
  py::class_<PageTable>(m, "PageTable", R"doc(
Page table of one KV-cache group: row r holds the page ids of the request in slot r.

Writes (append_row, add_row, move_row, swap_row) go to the host staging table; the device
copy changes only on commit(num_reqs). get_cpu_tensor(), get_device_tensor() and
num_pages_per_row are read-only NumPy views (no copies) that always show current contents.
Bad rows raise IndexError, negative page ids ValueError, overfull rows pagedkv.CapacityError;
a failed call changes nothing.)doc")
      .def(py::init<int32_t, int32_t, int32_t>(), py::arg("max_num_reqs"),
           py::arg("max_num_pages_per_req"), py::arg("max_num_batched_tokens"))
      .def_property_readonly("max_num_reqs", &PageTable::max_num_reqs)
      .def_property_readonly("max_num_pages_per_req", &PageTable::max_num_pages_per_req)
      .def_property_readonly("max_num_batched_tokens", &PageTable::max_num_batched_tokens)
      .def(
          "append_row",
          [](PageTable& t, py::handle page_ids, int32_t row_idx) {
            const IntSequence<int32_t> ids = ids_1d(page_ids, "page_ids");
            t.append_row(ids.span(), row_idx);
          },
          py::arg("page_ids"), py::arg("row_idx"),
          "Appends page_ids after the row's pages (staging only).")
      .def(
          "add_row",
          [](PageTable& t, py::handle page_ids, int32_t row_idx) {
            const IntSequence<int32_t> ids = ids_1d(page_ids, "page_ids");
            t.add_row(ids.span(), row_idx);
          },
          py::arg("page_ids"), py::arg("row_idx"), "Replaces the row by page_ids (staging only).")
      .def("move_row", &PageTable::move_row, py::arg("src"), py::arg("tgt"),
           "Copies row src onto row tgt; src keeps its pages.")
      .def("swap_row", &PageTable::swap_row, py::arg("src"), py::arg("tgt"),
           "Exchanges two rows, pages and counts.")
      .def("commit", &PageTable::commit, py::arg("num_reqs"),
           "Copies staging rows [0, num_reqs) to the device copy.")
      .def("clear", &PageTable::clear, "Zeroes both copies and every row count.")
      .def("get_cpu_tensor", &cpu_view,
           "Read-only view of the staging table [max_num_reqs, max_num_pages_per_req] int32.")
      .def("get_device_tensor", &device_view,
           "Read-only view of the committed table [max_num_reqs, max_num_pages_per_req] int32.")
      .def_property_readonly("page_table_cpu", &cpu_view, "Same as get_cpu_tensor().")
      .def_property_readonly("page_table", &device_view, "Same as get_device_tensor().")
      .def_property_readonly(
          "num_pages_per_row",
          [](const py::object& self) {
            const auto counts = self.cast<const PageTable&>().num_pages_per_row();
            return readonly_view(counts.data(), {static_cast<py::ssize_t>(counts.size())}, self);
          },
          "Read-only view [max_num_reqs] int32 of the valid pages per staging row.")
      .def(
          "row",
          [](const py::object& self, int32_t row_idx) {
            const auto r = self.cast<const PageTable&>().row(row_idx);
            return readonly_view(r.data(), {static_cast<py::ssize_t>(r.size())}, self);
          },
          py::arg("row_idx"), "Read-only view of the row's valid pages (staging).")
      .def("num_pages", &PageTable::num_pages, py::arg("row_idx"),
           "num_pages(row_idx: int) -> int: valid pages in the staging row.")
      .def(
          "read_device_tensor",
          [](const PageTable& t) {
            const std::vector<PageId> data = t.read_device_tensor();
            py::array_t<int32_t> out({t.max_num_reqs(), t.max_num_pages_per_req()});
            std::copy(data.begin(), data.end(), out.mutable_data());
            return out;
          },
          "A copy of the committed table downloaded from the device.")
      .def("verify", &PageTable::verify, "Checks every invariant (AssertionError on failure).")
      .def("__repr__", [](const PageTable& t) {
        return "PageTable(max_num_reqs=" + std::to_string(t.max_num_reqs()) +
               ", max_num_pages_per_req=" + std::to_string(t.max_num_pages_per_req()) +
               ", max_num_batched_tokens=" + std::to_string(t.max_num_batched_tokens()) + ")";
      });
}

void bind_multi_group_class(py::module_& m) {
  py::class_<MultiGroupPageTable>(m, "MultiGroupPageTable", R"doc(
One PageTable per KV-cache group; group g has cdiv(max_model_len, page_sizes[g]) columns.
Row operations take one page-id list per group and apply to every group; all groups are
validated before any changes. tables[g] / tables.page_tables[g] are the groups' PageTables.)doc")
      .def(py::init([](int32_t max_num_reqs, int32_t max_model_len, int32_t max_num_batched_tokens,
                       const std::vector<int32_t>& page_sizes) {
             return std::make_unique<MultiGroupPageTable>(max_num_reqs, max_model_len,
                                                          max_num_batched_tokens, page_sizes);
           }),
           py::arg("max_num_reqs"), py::arg("max_model_len"), py::arg("max_num_batched_tokens"),
           py::arg("page_sizes"))
      .def_property_readonly("num_groups", &MultiGroupPageTable::num_groups)
      .def_property_readonly("max_num_reqs", &MultiGroupPageTable::max_num_reqs)
      .def_property_readonly("max_model_len", &MultiGroupPageTable::max_model_len)
      .def_property_readonly("max_num_batched_tokens", &MultiGroupPageTable::max_num_batched_tokens)
      .def_property_readonly("page_sizes",
                             [](const MultiGroupPageTable& t) {
                               return std::vector<int32_t>(t.page_sizes().begin(),
                                                           t.page_sizes().end());
                             })
      .def(
          "append_row",
          [](MultiGroupPageTable& t, py::handle page_ids, int32_t row_idx) {
            t.append_row(group_pages_arg(page_ids, "page_ids"), row_idx);
          },
          py::arg("page_ids"), py::arg("row_idx"),
          "append_row(page_ids: Sequence[Sequence[int]], row_idx: int) -> None: appends "
          "page_ids[g] to row row_idx of group g (staging only).")
      .def(
          "add_row",
          [](MultiGroupPageTable& t, py::handle page_ids, int32_t row_idx) {
            t.add_row(group_pages_arg(page_ids, "page_ids"), row_idx);
          },
          py::arg("page_ids"), py::arg("row_idx"),
          "add_row(page_ids: Sequence[Sequence[int]], row_idx: int) -> None: replaces row "
          "row_idx of group g by page_ids[g] (staging only).")
      .def("move_row", &MultiGroupPageTable::move_row, py::arg("src"), py::arg("tgt"),
           "move_row(src: int, tgt: int) -> None: copies row src onto tgt in every group.")
      .def("swap_row", &MultiGroupPageTable::swap_row, py::arg("src"), py::arg("tgt"),
           "swap_row(src: int, tgt: int) -> None: exchanges two rows in every group.")
      .def("commit", &MultiGroupPageTable::commit, py::arg("num_reqs"),
           "commit(num_reqs: int) -> None: copies staging rows [0, num_reqs) of every group to "
           "its device copy.")
      .def("clear", &MultiGroupPageTable::clear, "clear() -> None: clears every group.")
      .def(
          "append_rows_batch",
          [](MultiGroupPageTable& t, py::handle page_ids_per_req, py::handle req_indices) {
            std::vector<std::vector<std::vector<PageId>>> per_req;
            for (py::handle req : page_ids_per_req) {
              per_req.push_back(group_pages_arg(req, "page_ids_per_req"));
            }
            const IntSequence<int32_t> rows = ids_1d(req_indices, "req_indices");
            t.append_rows_batch(per_req, rows.span());
          },
          py::arg("page_ids_per_req"), py::arg("req_indices"),
          "page_ids_per_req[i][g] is appended to row req_indices[i] of group g.")
      .def_property_readonly(
          "page_tables",
          [](const py::object& self) {
            auto& t = self.cast<MultiGroupPageTable&>();
            py::list out;
            for (PageTable& g : t.page_tables()) {
              out.append(py::cast(&g, py::return_value_policy::reference_internal, self));
            }
            return out;
          })
      .def(
          "__getitem__",
          [](MultiGroupPageTable& t, int32_t g) -> PageTable& {
            // Python sequence convention: negative indices count from the end.
            return t.group(g < 0 ? g + t.num_groups() : g);
          },
          py::arg("group"), py::return_value_policy::reference_internal)
      .def("__len__", &MultiGroupPageTable::num_groups)
      .def("verify", &MultiGroupPageTable::verify,
           "verify() -> None: checks every group's invariants (AssertionError).");
}

void bind_layouts(py::module_& m) {
  m.attr("SLOT_MAPPING_PADDING") = kSlotMappingPadding;
  m.attr("PAGE_TABLE_PADDING") = kPageTablePadding;

  m.def(
      "compute_slot_mapping_into",
      [](I64Out out, const PageTable& table, int32_t page_size, py::handle req_rows,
         py::handle start_positions, py::handle num_tokens, int64_t padding) {
        const IntSequence<int32_t> rows = ids_1d(req_rows, "req_rows");
        const IntSequence<int32_t> starts = ids_1d(start_positions, "start_positions");
        const IntSequence<int32_t> counts = ids_1d(num_tokens, "num_tokens");
        return compute_slot_mapping(table, page_size, {rows.span(), starts.span(), counts.span()},
                                    out_span(out, "out"), padding);
      },
      py::arg("out").noconvert(), py::arg("page_table"), py::arg("page_size"), py::arg("req_rows"),
      py::arg("start_positions"), py::arg("num_tokens"), py::arg("padding") = kSlotMappingPadding,
      R"doc(
Fills out (int64, 1-D) with the KV slot of every new token: request b (table row
req_rows[b]) brings positions [start_positions[b], start_positions[b] + num_tokens[b]), whose
slots are page_table[row][pos // page_size] * page_size + pos % page_size, requests in order;
the rest of out is set to padding (-1: no slot, the token is skipped by KV writes). Reads the
staging table. Returns the number of tokens.)doc");

  m.def(
      "compute_slot_mapping",
      [](const PageTable& table, int32_t page_size, py::handle req_rows, py::handle start_positions,
         py::handle num_tokens, int64_t padding) {
        const IntSequence<int32_t> rows = ids_1d(req_rows, "req_rows");
        const IntSequence<int32_t> starts = ids_1d(start_positions, "start_positions");
        const IntSequence<int32_t> counts = ids_1d(num_tokens, "num_tokens");
        I64Out out(table.max_num_batched_tokens());
        compute_slot_mapping(table, page_size, {rows.span(), starts.span(), counts.span()},
                             out_span(out, "out"), padding);
        return out;
      },
      py::arg("page_table"), py::arg("page_size"), py::arg("req_rows"), py::arg("start_positions"),
      py::arg("num_tokens"), py::arg("padding") = kSlotMappingPadding,
      "Like compute_slot_mapping_into, into a new int64 array [max_num_batched_tokens].");

  m.def(
      "flashinfer_num_indices",
      [](int32_t page_size, py::handle seq_lens) {
        const IntSequence<int32_t> lens = ids_1d(seq_lens, "seq_lens");
        return flashinfer_num_indices(page_size, lens.span());
      },
      py::arg("page_size"), py::arg("seq_lens"), "sum(cdiv(seq_len, page_size)).");

  m.def(
      "export_flashinfer_layout_into",
      [](const PageTable& table, int32_t page_size, py::handle req_rows, py::handle seq_lens,
         I32Out indptr, I32Out indices, I32Out last_page_len) {
        const IntSequence<int32_t> rows = ids_1d(req_rows, "req_rows");
        const IntSequence<int32_t> lens = ids_1d(seq_lens, "seq_lens");
        return export_flashinfer_layout(table, page_size, {rows.span(), lens.span()},
                                        {out_span(indptr, "indptr"), out_span(indices, "indices"),
                                         out_span(last_page_len, "last_page_len")});
      },
      py::arg("page_table"), py::arg("page_size"), py::arg("req_rows"), py::arg("seq_lens"),
      py::arg("indptr").noconvert(), py::arg("indices").noconvert(),
      py::arg("last_page_len").noconvert(), R"doc(
Fills FlashInfer's paged-KV index arrays (int32, 1-D, possibly longer than needed):
indptr [batch + 1] start of each request's pages in indices; indices: the first
cdiv(seq_len, page_size) pages of each request's row, request after request;
last_page_len [batch] tokens in the last page (1..page_size, 0 when seq_len is 0).
Reads the staging table. Returns the number of indices written.)doc");

  m.def(
      "export_flashinfer_layout",
      [](const PageTable& table, int32_t page_size, py::handle req_rows, py::handle seq_lens) {
        const IntSequence<int32_t> rows = ids_1d(req_rows, "req_rows");
        const IntSequence<int32_t> lens = ids_1d(seq_lens, "seq_lens");
        const auto batch = static_cast<py::ssize_t>(rows.span().size());
        I32Out indptr(batch + 1), last(batch);
        I32Out indices(static_cast<py::ssize_t>(flashinfer_num_indices(page_size, lens.span())));
        export_flashinfer_layout(table, page_size, {rows.span(), lens.span()},
                                 {out_span(indptr, "indptr"), out_span(indices, "indices"),
                                  out_span(last, "last_page_len")});
        return py::make_tuple(indptr, indices, last);
      },
      py::arg("page_table"), py::arg("page_size"), py::arg("req_rows"), py::arg("seq_lens"),
      "Like export_flashinfer_layout_into; returns new (indptr, indices, last_page_len).");
}

}  // namespace

void bind_page_table(py::module_& m) {
  bind_page_table_class(m);
  bind_multi_group_class(m);
  bind_layouts(m);
}

}  // namespace pagedkv::python
