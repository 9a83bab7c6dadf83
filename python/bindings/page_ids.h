// PageIds: the Python result type for lists of page ids (a request's pages per group, the
// free-queue order). It behaves as a read-only list of ints - len, indexing, slicing, iteration,
// == with any integer sequence, repr - and exposes its int32 buffer, so np.asarray(ids) is a
// zero-copy view and passing it back to pagedkv reads it in place. Returning one costs one
// object instead of one Python int per page.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "pagedkv/common/types.h"

namespace pagedkv::python {

struct PageIds {
  std::vector<PageId> ids;
};

// One PageIds object.
pybind11::object to_python(std::vector<PageId>&& ids);
// A list with one PageIds per KV-cache group.
pybind11::list to_python(std::vector<std::vector<PageId>>&& groups);

}  // namespace pagedkv::python
