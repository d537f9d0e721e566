// GroupCommitWriter: the write queue and writer thread both stores share
// (private to the store module).
//
// Group commit, as leveldb's DBImpl::Write does it: requests queue up while the
// writer is busy in fsync; when it comes back it takes *every* waiting batch and
// hands them all to `commit` as one transaction, so one fsync pays for many
// requests. Order is preserved (queue order = Write() call order), each caller
// hears about its own batch only after the commit returned, and a failed
// transaction fails every batch in it (none of them is applied). A batch that
// `commit` refuses on its own (a create_only put of an existing key: rolled back
// to its savepoint) fails alone, with the status `commit` put in `each`.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/thread.h"
#include "store/store.h"

namespace drover::store {

class GroupCommitWriter {
 public:
  struct Queued {
    WriteBatch batch;
    std::function<void(Status)> done;
  };
  using Group = std::deque<Queued>;
  // Applies every batch of `group` in one transaction; `each` (one per batch,
  // Ok to start with) receives the status of a batch refused on its own.
  using Commit = std::function<Status(const Group& group, std::vector<Status>& each)>;

  explicit GroupCommitWriter(Commit commit)
      : commit_(std::move(commit)), thread_([this] { Loop(); }) {}
  // Commits what is queued, then stops the writer thread.
  ~GroupCommitWriter() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  GroupCommitWriter(const GroupCommitWriter&) = delete;
  GroupCommitWriter& operator=(const GroupCommitWriter&) = delete;

  void Write(WriteBatch batch, std::function<void(Status)> done) {
    {
      std::lock_guard<std::mutex> l(mu_);
      queue_.push_back(Queued{std::move(batch), std::move(done)});
    }
    cv_.notify_one();
  }

  size_t Pending() const {
    std::lock_guard<std::mutex> l(mu_);
    return queue_.size();
  }

 private:
  void Loop() {
    SetThreadName("drover-writer");
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and drained
      Group group;
      group.swap(queue_);
      l.unlock();
      std::vector<Status> each(group.size());
      Status s = commit_(group, each);
      if (!s.ok()) LOG_ERROR("store commit of {} batches failed: {}", group.size(), s.message());
      for (size_t i = 0; i < group.size(); ++i) {
        if (group[i].done) group[i].done(s.ok() ? each[i] : s);
      }
      l.lock();
    }
  }

  Commit commit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Group queue_;        // guarded by mu_
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;  // last: starts after the members above exist
};

}  // namespace drover::store
