// WaitingQueue: a deque (FCFS) or an ordered set (PRIORITY) of non-owning sequence pointers.
#include "pagedkv/scheduler/waiting_queue.h"

#include <algorithm>
#include <tuple>
#include <unordered_set>

#include "pagedkv/common/errors.h"

namespace pagedkv {

bool WaitingQueue::PriorityLess::operator()(const Sequence* a, const Sequence* b) const {
  // Ids are unique among queued requests, so this is a total order on them.
  return std::forward_as_tuple(a->priority(), a->arrival_time(), a->request_id()) <
         std::forward_as_tuple(b->priority(), b->arrival_time(), b->request_id());
}

int32_t WaitingQueue::size() const {
  return static_cast<int32_t>(policy_ == SchedulingPolicy::kFcfs ? fcfs_.size() : priority_.size());
}

Sequence& WaitingQueue::head() const {
  PAGEDKV_CHECK_STATE(!empty(), "the waiting queue is empty");
  return policy_ == SchedulingPolicy::kFcfs ? *fcfs_.front() : **priority_.begin();
}

void WaitingQueue::pop_head() {
  PAGEDKV_CHECK_STATE(!empty(), "the waiting queue is empty");
  if (policy_ == SchedulingPolicy::kFcfs) {
    fcfs_.pop_front();
  } else {
    priority_.erase(priority_.begin());
  }
}

void WaitingQueue::push(Sequence& seq) {
  if (policy_ == SchedulingPolicy::kFcfs) {
    fcfs_.push_back(&seq);
  } else {
    const bool inserted = priority_.insert(&seq).second;
    PAGEDKV_ASSERT(inserted, "request '{}' queued twice", seq.request_id());
  }
}

void WaitingQueue::push_front(Sequence& seq) {
  if (policy_ == SchedulingPolicy::kFcfs) {
    fcfs_.push_front(&seq);
  } else {
    push(seq);
  }
}

bool WaitingQueue::remove(const Sequence& seq) {
  Sequence* key = const_cast<Sequence*>(&seq);  // the containers hold Sequence*; never written
  if (policy_ == SchedulingPolicy::kPriority) {
    auto it = priority_.find(key);
    if (it == priority_.end() || *it != key) return false;
    priority_.erase(it);
    return true;
  }
  auto it = std::find(fcfs_.begin(), fcfs_.end(), key);
  if (it == fcfs_.end()) return false;
  fcfs_.erase(it);
  return true;
}

std::vector<const Sequence*> WaitingQueue::in_order() const {
  if (policy_ == SchedulingPolicy::kFcfs) return {fcfs_.begin(), fcfs_.end()};
  return {priority_.begin(), priority_.end()};
}

void WaitingQueue::verify() const {
  PAGEDKV_ASSERT(policy_ == SchedulingPolicy::kFcfs ? priority_.empty() : fcfs_.empty(),
                 "the {} waiting queue holds entries in the other policy's container",
                 scheduling_policy_name(policy_));
  std::unordered_set<const Sequence*> seen;
  for (const Sequence* seq : in_order()) {
    PAGEDKV_ASSERT(seen.insert(seq).second, "request '{}' is queued twice", seq->request_id());
  }
  // std::set keeps PRIORITY sorted by construction; nothing else to walk.
}

}  // namespace pagedkv
