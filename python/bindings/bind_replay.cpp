#include "bindings.h"

namespace pagedkv::python {

void bind_replay(pybind11::module_& /*m*/) {}  // PLACEHOLDER: filled in by the replay component

}  // namespace pagedkv::python
