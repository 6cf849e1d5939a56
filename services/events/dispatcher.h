#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/stream_bytes.h"
#include "services/events/event_log.h"
#include "services/events/events.h"

namespace micro::events {

// Delivers events to the consumers of groups: who gets which event, acknowledgements,
// redelivery after ack_wait, the dead-letter topic after retry_limit, and each group's position
// (the sequence below which every event is done), stored through the EventLog.
//
// All reads of the log run on the dispatcher's own thread; consumers' Next and Ack only touch
// memory under one lock, so gRPC callback threads never wait on I/O.
class Dispatcher {
 public:
  // `log`, `clock` and `stream_bytes` (nullable) must outlive the dispatcher.
  Dispatcher(EventLog& log, const Clock& clock, Limits limits, StreamBytes* stream_bytes);
  ~Dispatcher();  // Stop()

  // Ends every consumer, stores the groups' positions and stops the thread. Appended, Trimmed
  // and the log's callbacks still work afterwards (the owner stops its committer after this).
  void Stop();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Validated by the caller.
  std::unique_ptr<Consumer> Join(const std::string& ns, const Subscription& subscription,
                                 std::function<void()> notify);

  // The log has events up to `last` in the topic (after a commit).
  void Appended(const std::string& ns, const std::string& topic, uint64_t last);
  // Retention removed the topic's events below `first`.
  void Trimmed(const std::string& ns, const std::string& topic, uint64_t first);

  // Ends every consumer with UNAVAILABLE, and those that join afterwards too.
  void CloseAll();

  // For tests and docs: the groups in memory (with at least one consumer).
  size_t groups() const;
  // The consumers joined and not yet gone, in every group.
  size_t consumers() const;

 private:
  struct Core;
  struct Group;
  class ConsumerHandle;
  struct Delivery {
    std::shared_ptr<Core> to;
    std::shared_ptr<Group> group;
    uint64_t sequence = 0;
    uint32_t count = 0;
    bool dead = false;  // to the dead-letter topic instead
  };

  void Loop();
  void Attach(const std::shared_ptr<Group>& group, std::unique_lock<std::mutex>& lock);
  void Plan(Group& group, const std::shared_ptr<Group>& self, std::vector<Delivery>* out);
  void Deliver(std::vector<Delivery> deliveries, std::unique_lock<std::mutex>& lock);
  void DeadLetter(const Delivery& delivery, Event event);
  void Done(Group& group, uint64_t sequence);
  void Advance(Group& group);
  void StorePosition(Group& group);
  void Release(Group& group, uint64_t sequence);
  void Leave(const std::shared_ptr<Core>& core);
  std::optional<Event> Next(Core& core);
  void Ack(Core& core, const std::string& id, bool success);
  void Wake();
  void Notify(std::vector<std::shared_ptr<Core>> cores);
  bool HasRoom(const Core& core) const;

  EventLog& log_;
  const Clock& clock_;
  const Limits limits_;
  StreamBytes* const stream_bytes_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool work_ = false;
  bool backoff_ = false;  // a read failed: the next pass waits a little
  bool stopping_ = false;
  bool closed_ = false;  // CloseAll ran: consumers that join are ended at once
  uint64_t next_serial_ = 1;
  std::map<std::string, std::shared_ptr<Group>> groups_;  // by ns \0 topic \0 group
  std::unordered_map<std::string, uint64_t> topic_last_;  // by ns \0 topic, from Appended
  std::unordered_map<std::string, uint64_t> positions_;   // by group key: the last stored
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace micro::events
