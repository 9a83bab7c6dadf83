// The seed-002 InferenceScheduler facade (compat module) with the seed's names:
// InitialSequenceRequest, GenerationStepTask, AllocatedPrefillPages, SlotPageAssignment,
// NextIterationPlan, ActiveSequenceBatch, InferenceScheduler. Registration only: validation and
// policy live in the C++ library. Values cross by copy: a plan's prefill_request and tasks, and
// the batch's active_slot_requests_map, are snapshots; the batch changes through advance() and
// InferenceScheduler.finish_decode only.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "arguments.h"
#include "bindings.h"
#include "int_sequence.h"
#include "pagedkv/compat/active_sequence_batch.h"
#include "pagedkv/compat/hbm_page_manager.h"
#include "pagedkv/compat/inference_scheduler.h"
#include "pagedkv/compat/inference_types.h"

namespace py = pybind11;

namespace pagedkv::python {
namespace {

std::vector<TokenId> token_ids_arg(py::handle obj, const char* name) {
  IntSequence<TokenId> ids(obj, name);
  ids.require_ndim(1);
  return std::move(ids).release_vector();
}

void bind_requests(py::module_& m) {
  py::class_<InitialSequenceRequest>(
      m, "InitialSequenceRequest",
      "A prompt waiting for its prefill or part-way through it (the seed's scheduler fields). "
      "Each plan computes tokens [chunk_start, chunk_end); the driver then does "
      "chunk_idx += 1.")
      .def(py::init([](std::string id, py::handle prompt_token_ids, int32_t chunk_size,
                       int32_t chunk_idx, py::handle page_indices) {
             InitialSequenceRequest r;
             r.id = std::move(id);
             r.prompt_token_ids = token_ids_arg(prompt_token_ids, "prompt_token_ids");
             r.chunk_size = chunk_size;
             r.chunk_idx = chunk_idx;
             r.page_indices = page_ids_arg(page_indices, "page_indices");
             return r;
           }),
           py::arg("id"), py::arg("prompt_token_ids"), py::arg("chunk_size"),
           py::arg("chunk_idx") = 0, py::arg("page_indices") = py::list(),
           "InitialSequenceRequest(id: str, prompt_token_ids: Sequence[int], chunk_size: int, "
           "chunk_idx: int = 0, page_indices: Sequence[int] = []) - an empty page_indices is "
           "filled with dummy pages (0) when it is enqueued")
      .def_readwrite("id", &InitialSequenceRequest::id, "str")
      .def_property(
          "prompt_token_ids", [](const InitialSequenceRequest& r) { return r.prompt_token_ids; },
          [](InitialSequenceRequest& r, py::handle v) {
            r.prompt_token_ids = token_ids_arg(v, "prompt_token_ids");
          },
          "list[int]: the whole prompt (for a preempted request: its tokens so far)")
      .def_readwrite("chunk_idx", &InitialSequenceRequest::chunk_idx,
                     "int: the chunk the next plan computes")
      .def_readwrite("chunk_size", &InitialSequenceRequest::chunk_size,
                     "int: tokens per chunk; the last one may be shorter")
      .def_property(
          "page_indices", [](const InitialSequenceRequest& r) { return r.page_indices; },
          [](InitialSequenceRequest& r, py::handle v) {
            r.page_indices = page_ids_arg(v, "page_indices");
          },
          "list[int]: [num_pages_per_sequence] page of each logical page, 0 = not mapped")
      .def_property_readonly("prompt_len", &InitialSequenceRequest::prompt_len, "int")
      .def_property_readonly("chunk_start", &InitialSequenceRequest::chunk_start,
                             "int: chunk_idx * chunk_size")
      .def_property_readonly("chunk_end", &InitialSequenceRequest::chunk_end,
                             "int: min(prompt_len, chunk_start + chunk_size)")
      .def_property_readonly("is_complete", &InitialSequenceRequest::is_complete,
                             "bool: every chunk computed (chunk_start >= prompt_len)")
      .def("__repr__", [](const InitialSequenceRequest& r) {
        return fmt::format(
            "InitialSequenceRequest(id='{}', prompt_len={}, chunk_idx={}, "
            "chunk_size={})",
            r.id, r.prompt_len(), r.chunk_idx, r.chunk_size);
      });

  py::class_<GenerationStepTask>(
      m, "GenerationStepTask",
      "A sequence past its prefill: each decode step computes prefill_token_id at `position` "
      "and samples the next token. token_ids (not in the seed) are the tokens the pages hold; "
      "a preempted task is recomputed from token_ids + [prefill_token_id].")
      .def(py::init([](std::string id, int32_t position, py::handle page_indices,
                       TokenId prefill_token_id, py::handle token_ids, int32_t slot) {
             GenerationStepTask t;
             t.id = std::move(id);
             t.position = position;
             t.page_indices = page_ids_arg(page_indices, "page_indices");
             t.prefill_token_id = prefill_token_id;
             t.token_ids = token_ids_arg(token_ids, "token_ids");
             t.slot = slot;
             return t;
           }),
           py::arg("id"), py::arg("position"), py::arg("page_indices"), py::arg("prefill_token_id"),
           py::arg("token_ids"), py::arg("slot") = -1,
           "GenerationStepTask(id: str, position: int, page_indices: Sequence[int], "
           "prefill_token_id: int, token_ids: Sequence[int], slot: int = -1)")
      .def_static("from_prefill", &GenerationStepTask::from_prefill, py::arg("prefill"),
                  py::arg("prefill_token_id"),
                  "from_prefill(prefill: InitialSequenceRequest, prefill_token_id: int) -> "
                  "GenerationStepTask: the task of a complete prefill (RuntimeError "
                  "otherwise): position = prompt_len, token_ids = the prompt, its pages")
      .def_readwrite("id", &GenerationStepTask::id, "str")
      .def_readwrite("slot", &GenerationStepTask::slot, "int: batch slot, -1 until admitted")
      .def_readwrite("position", &GenerationStepTask::position,
                     "int: where the next token's K/V goes (= tokens computed)")
      .def_property(
          "page_indices", [](const GenerationStepTask& t) { return t.page_indices; },
          [](GenerationStepTask& t, py::handle v) {
            t.page_indices = page_ids_arg(v, "page_indices");
          },
          "list[int]: [num_pages_per_sequence] page of each logical page, 0 = not mapped")
      .def_readwrite("prefill_token_id", &GenerationStepTask::prefill_token_id,
                     "int: the next step's input token (sampled last)")
      .def_property(
          "token_ids", [](const GenerationStepTask& t) { return t.token_ids; },
          [](GenerationStepTask& t, py::handle v) { t.token_ids = token_ids_arg(v, "token_ids"); },
          "list[int]: [position] the tokens whose K/V the pages hold")
      .def("advance", &GenerationStepTask::advance, py::arg("sampled"),
           "advance(sampled: int) -> None: after a decode step, prefill_token_id joins "
           "token_ids, `sampled` becomes the next input, position += 1")
      .def("__repr__", [](const GenerationStepTask& t) {
        return fmt::format(
            "GenerationStepTask(id='{}', slot={}, position={}, "
            "prefill_token_id={})",
            t.id, t.slot, t.position, t.prefill_token_id);
      });
}

void bind_plan(py::module_& m) {
  py::class_<AllocatedPrefillPages>(m, "AllocatedPrefillPages",
                                    "The pages mapped for the planned prefill chunk.")
      .def_readonly("page_indices", &AllocatedPrefillPages::page_indices,
                    "list[int]: in page-table order")
      .def("__eq__",
           [](const AllocatedPrefillPages& a, const AllocatedPrefillPages& b) { return a == b; })
      .def("__repr__", [](const AllocatedPrefillPages& a) {
        return "AllocatedPrefillPages(" + py::repr(py::cast(a.page_indices)).cast<std::string>() +
               ")";
      });

  py::class_<SlotPageAssignment>(m, "SlotPageAssignment",
                                 "page_indices[page_idx] of the decode in `slot` becomes "
                                 "mapped_idx.")
      .def(py::init([](int32_t slot, int32_t page_idx, PageId mapped_idx) {
             return SlotPageAssignment{slot, page_idx, mapped_idx};
           }),
           py::arg("slot"), py::arg("page_idx"), py::arg("mapped_idx"),
           "SlotPageAssignment(slot: int, page_idx: int, mapped_idx: int)")
      .def_readonly("slot", &SlotPageAssignment::slot, "int")
      .def_readonly("page_idx", &SlotPageAssignment::page_idx, "int")
      .def_readonly("mapped_idx", &SlotPageAssignment::mapped_idx, "int")
      .def("__eq__",
           [](const SlotPageAssignment& a, const SlotPageAssignment& b) { return a == b; })
      .def("__repr__", [](const SlotPageAssignment& a) {
        return fmt::format("SlotPageAssignment(slot={}, page_idx={}, mapped_idx={})", a.slot,
                           a.page_idx, a.mapped_idx);
      });

  py::class_<NextIterationPlan>(m, "NextIterationPlan",
                                "What the next model step computes. Neither flag set: no work.")
      .def_readonly("schedule_prefill", &NextIterationPlan::schedule_prefill,
                    "bool: compute prefill_request's chunk")
      .def_readonly("schedule_decodes", &NextIterationPlan::schedule_decodes,
                    "bool: compute one token of every active decode")
      .def_readonly("prefill_request", &NextIterationPlan::prefill_request,
                    "InitialSequenceRequest | None: owns this chunk's pages; keep it as the "
                    "next active_prefill or turn it into a GenerationStepTask")
      .def_readonly("prefill_pages_update", &NextIterationPlan::prefill_pages_update,
                    "AllocatedPrefillPages | None")
      .def_readonly("new_decodes_requests", &NextIterationPlan::new_decodes_requests,
                    "list[GenerationStepTask]: copies of the tasks admitted in this step")
      .def_readonly("decodes_state_page_updates", &NextIterationPlan::decodes_state_page_updates,
                    "list[SlotPageAssignment]: pages mapped for decodes starting a page")
      .def_readonly("preempted_request_ids", &NextIterationPlan::preempted_request_ids,
                    "list[str]: requests preempted in this step, back in the prefill queue")
      .def_property_readonly("has_work", &NextIterationPlan::has_work,
                             "bool: schedule_prefill or schedule_decodes")
      .def("__repr__", [](const NextIterationPlan& p) {
        return fmt::format(
            "NextIterationPlan(schedule_prefill={}, schedule_decodes={}, "
            "prefill_request={}, new_decodes_requests={}, page_updates={}, "
            "preempted={})",
            p.schedule_prefill ? "True" : "False", p.schedule_decodes ? "True" : "False",
            p.prefill_request ? "'" + p.prefill_request->id + "'" : "None",
            p.new_decodes_requests.size(), p.decodes_state_page_updates.size(),
            p.preempted_request_ids.size());
      });
}

void bind_batch(py::module_& m) {
  py::class_<ActiveSequenceBatch>(m, "ActiveSequenceBatch",
                                  "The decode batch: batch_size slots, each free or holding one "
                                  "GenerationStepTask (the seed's available_slots and "
                                  "active_slot_requests_map).")
      .def(py::init<int32_t>(), py::arg("batch_size"),
           "ActiveSequenceBatch(batch_size: int) - ValueError unless batch_size > 0")
      .def_property_readonly("batch_size", &ActiveSequenceBatch::batch_size, "int")
      .def_property_readonly(
          "available_slots",
          [](const ActiveSequenceBatch& b) {
            return std::vector<int32_t>(b.available_slots().begin(), b.available_slots().end());
          },
          "list[int]: free slots, next handed out first")
      .def_property_readonly(
          "active_slot_requests_map",
          [](const ActiveSequenceBatch& b) {
            py::dict out;  // insertion order = admission order
            for (int32_t slot : b.admission_order()) out[py::int_(slot)] = py::cast(b.at(slot));
            return out;
          },
          "dict[int, GenerationStepTask]: copies of the active tasks by slot, in admission "
          "order")
      .def_property_readonly("admission_order", &ActiveSequenceBatch::admission_order,
                             "list[int]: active slots, oldest admission first")
      .def_property_readonly("num_active", &ActiveSequenceBatch::num_active, "int")
      .def("is_active", &ActiveSequenceBatch::is_active, py::arg("slot"),
           "is_active(slot: int) -> bool")
      .def("at", &ActiveSequenceBatch::at, py::arg("slot"),
           "at(slot: int) -> GenerationStepTask: a copy of the task in `slot` (IndexError "
           "outside [0, batch_size), RuntimeError for a free slot)")
      .def("advance", &ActiveSequenceBatch::advance, py::arg("slot"), py::arg("sampled"),
           "advance(slot: int, sampled: int) -> None: records a decode step of the task in "
           "`slot` (GenerationStepTask.advance)")
      .def("verify", &ActiveSequenceBatch::verify,
           "verify() -> None: every slot is free or active, once (AssertionError otherwise)")
      .def("__len__", &ActiveSequenceBatch::num_active, "__len__() -> int: active tasks")
      .def("__repr__", [](const ActiveSequenceBatch& b) {
        return fmt::format("ActiveSequenceBatch(batch_size={}, active={})", b.batch_size(),
                           b.num_active());
      });
}

void bind_scheduler_facade(py::module_& m) {
  py::class_<InferenceScheduler>(
      m, "InferenceScheduler",
      "The seed-002 scheduler: one prefill at a time in chunks, decodes in slots, one new page "
      "when a decode starts a page. Where the seed raised for lack of pages it preempts the most "
      "recently admitted decode (recomputed later); with nothing runnable, create_plan returns "
      "a plan with no work.")
      .def(py::init([](HBMPageManager& manager, int32_t batch_size, int32_t num_pages_per_sequence,
                       int32_t resume_chunk_size) {
             return new InferenceScheduler(
                 manager, InferenceSchedulerConfig{.batch_size = batch_size,
                                                   .num_pages_per_sequence = num_pages_per_sequence,
                                                   .resume_chunk_size = resume_chunk_size});
           }),
           py::arg("manager"), py::arg("batch_size"), py::arg("num_pages_per_sequence"),
           py::arg("resume_chunk_size") = 512, py::keep_alive<1, 2>(),
           "InferenceScheduler(manager: HBMPageManager, batch_size: int, "
           "num_pages_per_sequence: int, resume_chunk_size: int = 512) - ValueError unless all "
           "are > 0 and num_pages_per_sequence <= manager.num_pages - 1")
      .def_property_readonly("batch_size", &InferenceScheduler::batch_size, "int: decode slots")
      .def_property_readonly("max_seq_len", &InferenceScheduler::max_seq_len,
                             "int: num_pages_per_sequence * page_size")
      .def_property_readonly(
          "num_pages_per_sequence",
          [](const InferenceScheduler& s) { return s.config().num_pages_per_sequence; }, "int")
      .def_property_readonly(
          "resume_chunk_size",
          [](const InferenceScheduler& s) { return s.config().resume_chunk_size; },
          "int: chunk size of a preempted request's recompute")
      .def_property_readonly(
          "manager", [](const InferenceScheduler& s) { return &s.manager(); },
          py::return_value_policy::reference_internal, "HBMPageManager")
      .def_property_readonly(
          "prefill_queue",
          [](const InferenceScheduler& s) {
            return std::vector<InitialSequenceRequest>(s.prefill_queue().begin(),
                                                       s.prefill_queue().end());
          },
          "list[InitialSequenceRequest]: copies, head first")
      .def_property_readonly(
          "decodes_queue",
          [](const InferenceScheduler& s) {
            return std::vector<GenerationStepTask>(s.decodes_queue().begin(),
                                                   s.decodes_queue().end());
          },
          "list[GenerationStepTask]: copies, head first")
      .def("enqueue_prefill_request", &InferenceScheduler::enqueue_prefill_request,
           py::arg("request"),
           "enqueue_prefill_request(request: InitialSequenceRequest) -> None: queues a new "
           "prompt (ValueError for an empty or too long prompt, chunk_size <= 0, chunk_idx != 0 "
           "or mapped pages)")
      .def("enqueue_decodes_request", &InferenceScheduler::enqueue_decodes_request,
           py::arg("request"),
           "enqueue_decodes_request(request: GenerationStepTask) -> None: queues a sequence "
           "whose prefill is complete; it holds its pages (ValueError, IndexError or "
           "RuntimeError naming the bad field)")
      .def(
          "create_plan",
          [](InferenceScheduler& s, std::optional<InitialSequenceRequest> active_prefill,
             ActiveSequenceBatch& decodes_state) {
            return s.create_plan(std::move(active_prefill), decodes_state);
          },
          py::arg("active_prefill"), py::arg("decodes_state"),
          "create_plan(active_prefill: InitialSequenceRequest | None, decodes_state: "
          "ActiveSequenceBatch) -> NextIterationPlan: plans the next model step; admits queued "
          "decodes, maps pages and preempts in decodes_state. The plan's prefill_request "
          "replaces active_prefill. Raises, changing nothing, for inconsistent input.")
      .def("finish_decode", &InferenceScheduler::finish_decode, py::arg("decodes_state"),
           py::arg("slot"),
           "finish_decode(decodes_state: ActiveSequenceBatch, slot: int) -> "
           "GenerationStepTask: frees the finished decode's pages and slot")
      .def("verify", &InferenceScheduler::verify, py::arg("active_prefill"),
           py::arg("decodes_state"),
           "verify(active_prefill: InitialSequenceRequest | None, decodes_state: "
           "ActiveSequenceBatch) -> None: every handed-out page is mapped exactly once "
           "(AssertionError naming the first broken invariant)")
      .def("__repr__", [](const InferenceScheduler& s) {
        return fmt::format(
            "InferenceScheduler(batch_size={}, max_seq_len={}, prefill_queue={}, "
            "decodes_queue={})",
            s.batch_size(), s.max_seq_len(), s.prefill_queue().size(), s.decodes_queue().size());
      });
}

}  // namespace

void bind_seed_scheduler(py::module_& m) {
  bind_requests(m);
  bind_plan(m);
  bind_batch(m);
  bind_scheduler_facade(m);
}

}  // namespace pagedkv::python
