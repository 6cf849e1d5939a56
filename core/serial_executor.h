#pragma once

#include <pthread.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace micro {

// Runs closures one after another, in submission order, on a thread of its own. The destructor
// runs everything already submitted, then joins. Thread-safe.
class SerialExecutor {
 public:
  // `name` (at most 15 characters) labels the thread in top, perf and gdb.
  explicit SerialExecutor(std::string name)
      : thread_([this, name = std::move(name)] {
          pthread_setname_np(pthread_self(), name.c_str());
          Loop();
        }) {}
  ~SerialExecutor() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  SerialExecutor(const SerialExecutor&) = delete;
  SerialExecutor& operator=(const SerialExecutor&) = delete;

  void Submit(std::function<void()> task) {
    {
      std::lock_guard lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    for (;;) {
      std::deque<std::function<void()>> batch;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        batch.swap(tasks_);
      }
      for (auto& task : batch) task();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace micro
