// pagedkv/scheduler/waiting_queue.h - the scheduler's queue of requests waiting for admission
// (vLLM's RequestQueue), in one of two orders:
//   FCFS      a deque: new requests join the back, preempted ones the FRONT (rule 36), so
//             several victims of one step - preempted last-running first - end up in their
//             original relative order; the head is the front;
//   PRIORITY  ordered by (priority, arrival_time, request_id), lower first (rule 37); new and
//             preempted requests alike take their place in that order; the head is the first.
//
// Example:
//   WaitingQueue waiting(SchedulingPolicy::kFcfs);
//   waiting.push(a); waiting.push(b);          // [a, b]
//   waiting.push_front(c);                     // [c, a, b] (c was preempted)
//   Sequence& head = waiting.head();           // c
//   waiting.pop_head();                        // [a, b]
//   waiting.remove(b);                         // [a] (b aborted)
//
// The queue holds non-owning pointers (the Scheduler owns the sequences). A sequence's
// priority, arrival time and id must not change while it is queued (they never do).
// Invariants (verify()): no sequence twice; PRIORITY entries sorted.
#pragma once

#include <cstdint>
#include <deque>
#include <set>
#include <vector>

#include "pagedkv/scheduler/scheduler_config.h"
#include "pagedkv/scheduler/sequence.h"

namespace pagedkv {

class WaitingQueue {
 public:
  explicit WaitingQueue(SchedulingPolicy policy) : policy_(policy) {}

  SchedulingPolicy policy() const { return policy_; }
  bool empty() const { return size() == 0; }
  int32_t size() const;

  // The next request to admit. StateError when empty.
  Sequence& head() const;
  void pop_head();  // StateError when empty
  // A new request: FCFS at the back; PRIORITY in order.
  void push(Sequence& seq);
  // A preempted request: FCFS at the FRONT; PRIORITY in order (rule 36).
  void push_front(Sequence& seq);
  // Removes `seq` if queued (O(n) in FCFS, O(log n) in PRIORITY); returns whether it was.
  bool remove(const Sequence& seq);

  // The queued sequences, head first.
  std::vector<const Sequence*> in_order() const;

  void verify() const;

 private:
  // Strict weak order of PRIORITY: (priority, arrival_time, request_id).
  struct PriorityLess {
    bool operator()(const Sequence* a, const Sequence* b) const;
  };

  SchedulingPolicy policy_;
  std::deque<Sequence*> fcfs_;
  std::set<Sequence*, PriorityLess> priority_;
};

}  // namespace pagedkv
