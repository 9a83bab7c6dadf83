#include <pybind11/pybind11.h>

#include "bindings.h"
#include "pagedkv/common/cpu_info.h"
#include "pagedkv/common/errors.h"

namespace py = pybind11;

namespace pagedkv::python {

void bind_errors(py::module_& m) {
  // The one-to-one map of typed C++ errors onto Python exceptions.
  static py::exception<CapacityError> capacity_error(m, "CapacityError", PyExc_RuntimeError);
  static py::exception<FormatError> format_error(m, "FormatError", PyExc_ValueError);
  static py::exception<InternalError> internal_error(m, "InternalError", PyExc_AssertionError);
  capacity_error.attr("__doc__") =
      "Raised when a request or a page count can never fit (a RuntimeError).";
  format_error.attr("__doc__") =
      "Raised when a file breaks its format, e.g. a bad safetensors header (a ValueError).";
  internal_error.attr("__doc__") =
      "Raised when verify() finds a broken invariant (an AssertionError): a bug in pagedkv.";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InvalidArgument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const OutOfRange& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    } catch (const StateError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    } catch (const CapacityError& e) {
      PyErr_SetString(capacity_error.ptr(), e.what());
    } catch (const FormatError& e) {
      PyErr_SetString(format_error.ptr(), e.what());
    } catch (const InternalError& e) {
      PyErr_SetString(internal_error.ptr(), e.what());
    }
  });
  m.def(
      "set_isa_cap", [](const std::string& name) { set_isa_cap(parse_isa(name)); }, py::arg("isa"),
      "Caps the SIMD ISA: 'scalar', 'avx2', 'avx512' or 'avx512bf16'.");
  m.def(
      "active_isa", [] { return std::string(isa_name(active_isa())); },
      "active_isa() -> str: the SIMD level kernels use now (detected, capped by set_isa_cap).");
  m.def(
      "detected_isa", [] { return std::string(isa_name(detected_isa())); },
      "detected_isa() -> str: the best SIMD level this CPU supports.");
}

}  // namespace pagedkv::python

PYBIND11_MODULE(_pagedkv, m) {
  m.doc() = "pagedkv: KV-cache paging for LLM inference (C++ core)";
  using namespace pagedkv::python;
  bind_errors(m);
  bind_page_ids(m);
  bind_hash(m);
  bind_pool(m);
  bind_manager(m);
  bind_page_table(m);
  bind_replay(m);
  bind_kv_cache(m);
  bind_attention(m);
  bind_scheduler(m);
  bind_engine(m);
  bind_compat(m);
  bind_seed_scheduler(m);
}
