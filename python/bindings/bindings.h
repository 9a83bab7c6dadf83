// Registration functions of the extension module pagedkv._pagedkv, one per component file.
// Binding files only register: validation and policy live in the C++ library.
#pragma once

#include <pybind11/pybind11.h>

namespace pagedkv::python {

void bind_errors(pybind11::module_& m);
void bind_page_ids(pybind11::module_& m);    // PageIds, the page-id list result type
void bind_hash(pybind11::module_& m);        // PageHasher, Request
void bind_pool(pybind11::module_& m);        // PagePool, KVEvent
void bind_manager(pybind11::module_& m);     // KVCacheManager and its config
void bind_page_table(pybind11::module_& m);  // PageTable, MultiGroupPageTable, batch layouts
void bind_replay(pybind11::module_& m);      // trace loading and replay
void bind_kv_cache(pybind11::module_& m);    // metadata, PagedKVCache, write_slots
void bind_attention(pybind11::module_& m);   // paged attention
void bind_scheduler(pybind11::module_& m);   // Scheduler, its config, outputs and sequences
void bind_engine(pybind11::module_& m);      // LLMEngine, RequestOutput, make_model, score_tokens
void bind_compat(pybind11::module_& m);      // seed-shaped APIs: HBMPageManager,
                                             // kv_cache_update, PagedAttentionMetadata
void bind_seed_scheduler(pybind11::module_& m);  // seed-002 InferenceScheduler and its types

}  // namespace pagedkv::python
