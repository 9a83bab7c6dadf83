#include "bindings.h"

namespace pagedkv::python {

void bind_page_table(pybind11::module_& /*m*/) {}  // PLACEHOLDER: filled in by the page_table component

}  // namespace pagedkv::python
