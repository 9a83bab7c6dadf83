// WaitingQueue: FCFS keeps arrival order with preempted requests at the front; PRIORITY orders
// by (priority, arrival_time, request_id) whatever the insertion order.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/scheduler/waiting_queue.h"

namespace pagedkv {
namespace {

std::unique_ptr<Sequence> seq(const std::string& id, int32_t priority, double arrival) {
  return std::make_unique<Sequence>(Request(id, {1, 2, 3}), SamplingParams{}, std::nullopt,
                                    priority, arrival);
}

std::vector<std::string> ids(const WaitingQueue& q) {
  std::vector<std::string> out;
  for (const Sequence* s : q.in_order()) out.push_back(s->request_id());
  return out;
}

TEST(WaitingQueue, FcfsPreemptedVictimsKeepTheirRelativeOrderAtTheFront) {
  auto a = seq("a", 0, 0), b = seq("b", 0, 1), c = seq("c", 0, 2), d = seq("d", 0, 3);
  WaitingQueue q(SchedulingPolicy::kFcfs);
  q.push(*a);
  q.push(*b);
  // Running was [c, d]; victims are taken from the back: d first, then c.
  q.push_front(*d);
  q.push_front(*c);
  EXPECT_EQ(ids(q), (std::vector<std::string>{"c", "d", "a", "b"}));
  EXPECT_EQ(&q.head(), c.get());
  q.pop_head();
  EXPECT_TRUE(q.remove(*a));
  EXPECT_FALSE(q.remove(*a));
  EXPECT_EQ(ids(q), (std::vector<std::string>{"d", "b"}));
  q.verify();
}

TEST(WaitingQueue, PriorityOrdersByPriorityThenArrivalThenId) {
  auto a = seq("a", 1, 0), b = seq("b", 0, 5), c = seq("c", 0, 2), d = seq("d", 0, 2);
  WaitingQueue q(SchedulingPolicy::kPriority);
  q.push(*a);
  q.push(*d);
  q.push(*b);
  q.push_front(*c);  // preempted: takes its place in the order, not the front
  EXPECT_EQ(ids(q), (std::vector<std::string>{"c", "d", "b", "a"}));
  EXPECT_TRUE(q.remove(*b));
  EXPECT_EQ(ids(q), (std::vector<std::string>{"c", "d", "a"}));
  q.verify();
}

TEST(WaitingQueue, EmptyQueueHasNoHead) {
  WaitingQueue q(SchedulingPolicy::kFcfs);
  EXPECT_THROW(q.head(), StateError);
  EXPECT_THROW(q.pop_head(), StateError);
  EXPECT_TRUE(q.empty());
}

}  // namespace
}  // namespace pagedkv
