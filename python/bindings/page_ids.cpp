#include "page_ids.h"

#include <pybind11/stl.h>

#include <string>

#include "bindings.h"
#include "int_sequence.h"

namespace py = pybind11;

namespace pagedkv::python {
namespace {

py::ssize_t normalise_index(const PageIds& p, py::ssize_t i) {
  const auto n = static_cast<py::ssize_t>(p.ids.size());
  if (i < 0) i += n;
  if (i < 0 || i >= n)
    throw py::index_error("PageIds index " + std::to_string(i) + " out of range");
  return i;
}

py::object equals(const PageIds& p, py::handle other) {
  if (py::isinstance<py::str>(other) || py::isinstance<py::bytes>(other)) return py::bool_(false);
  try {
    const IntSequence<int64_t> seq(other, "other");
    if (seq.ndim() > 1 || seq.size() != p.ids.size()) return py::bool_(false);
    for (size_t i = 0; i < p.ids.size(); ++i) {
      if (seq.span()[i] != p.ids[i]) return py::bool_(false);
    }
    return py::bool_(true);
  } catch (const py::error_already_set&) {
    return py::reinterpret_borrow<py::object>(Py_NotImplemented);
  } catch (const py::builtin_exception&) {
    return py::reinterpret_borrow<py::object>(Py_NotImplemented);
  }
}

std::string repr(const PageIds& p) {
  std::string out = "[";
  for (size_t i = 0; i < p.ids.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(p.ids[i]);
  }
  return out + "]";
}

}  // namespace

void bind_page_ids(py::module_& m) {
  py::class_<PageIds>(m, "PageIds", py::buffer_protocol(), R"doc(
Page ids returned by pagedkv (int32, read-only). Behaves as a list of ints: len(), indexing,
slicing (returns a list), iteration, == with any integer sequence, tolist(). np.asarray(ids) is
a zero-copy int32 view, and a PageIds passed back to pagedkv is read in place.)doc")
      .def_buffer([](PageIds& p) {
        return py::buffer_info(p.ids.data(), static_cast<py::ssize_t>(p.ids.size()),
                               /*readonly=*/true);
      })
      .def("__len__", [](const PageIds& p) { return p.ids.size(); })
      .def(
          "__getitem__",
          [](const PageIds& p, py::ssize_t i) {
            return p.ids[static_cast<size_t>(normalise_index(p, i))];
          },
          py::arg("index"))
      .def(
          "__getitem__",
          [](const PageIds& p, const py::slice& s) {
            size_t start = 0, stop = 0, step = 0, length = 0;
            if (!s.compute(p.ids.size(), &start, &stop, &step, &length))
              throw py::error_already_set();
            py::list out(length);
            for (size_t k = 0; k < length; ++k) out[k] = py::int_(p.ids[start + k * step]);
            return out;
          },
          py::arg("slice"))
      .def(
          "__iter__",
          [](const PageIds& p) { return py::make_iterator(p.ids.begin(), p.ids.end()); },
          py::keep_alive<0, 1>())
      .def("__contains__",
           [](const PageIds& p, PageId id) {
             for (PageId x : p.ids)
               if (x == id) return true;
             return false;
           })
      .def("__eq__", &equals, py::is_operator())
      .def(
          "__ne__",
          [](const PageIds& p, py::handle other) {
            py::object eq = equals(p, other);
            if (eq.is(py::reinterpret_borrow<py::object>(Py_NotImplemented))) return eq;
            return py::object(py::bool_(!eq.cast<bool>()));
          },
          py::is_operator())
      .def(
          "tolist", [](const PageIds& p) { return py::cast(p.ids); }, "The ids as a list of ints.")
      .def(
          "__add__",
          [](const PageIds& p, py::handle other) {
            py::list out = py::cast(p.ids);
            for (py::handle x : other) out.append(x);
            return out;
          },
          py::is_operator(), "PageIds + sequence -> list, as list + list.")
      .def(
          "__radd__",
          [](const PageIds& p, py::handle other) {
            py::list out;
            for (py::handle x : other) out.append(x);
            for (PageId id : p.ids) out.append(py::int_(id));
            return out;
          },
          py::is_operator(), "sequence + PageIds -> list.")
      .def("__repr__", &repr);
  py::setattr(m.attr("PageIds"), "__hash__", py::none());
}

py::object to_python(std::vector<PageId>&& ids) { return py::cast(PageIds{std::move(ids)}); }

py::list to_python(std::vector<std::vector<PageId>>&& groups) {
  py::list out(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) out[g] = to_python(std::move(groups[g]));
  return out;
}

}  // namespace pagedkv::python
