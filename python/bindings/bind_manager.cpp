#include "bindings.h"

namespace pagedkv::python {

void bind_manager(pybind11::module_& /*m*/) {}  // PLACEHOLDER: filled in by the manager component

}  // namespace pagedkv::python
