// Reading log history: from the end of the files, within a byte bound, outside the lock that
// appends take.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <thread>

#include "runtime/log_files.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace micro::runtime {
namespace {

using micro::testing::TempDir;

std::string Message(int i) { return "line " + std::to_string(i) + " " + std::string(60, 'x'); }

int NumberOf(const std::string& message) { return std::stoi(message.substr(5)); }

// `count` records of instance svc-0 with times 1'000'000 + i.
void Fill(ServiceLogs& logs, int from, int count) {
  for (int i = from; i < from + count; ++i) {
    logs.Append({1'000'000 + i, "svc-0", "stdout", Message(i), ""});
  }
}

TEST_CASE("a read of a long history returns the last N lines from the end of the files",
          "[runtime][logs]") {
  TempDir dir;
  // About 9 MB in 100 rotated files of 90 KB.
  ServiceLogs logs(dir.path(), "v1", LogPolicy{90 << 10, 100});
  Fill(logs, 0, 100'000);
  auto last = logs.Read({"", 0, 50});
  REQUIRE(last.ok());
  REQUIRE(last->size() == 50);
  for (int i = 0; i < 50; ++i) CHECK(NumberOf((*last)[i].message) == 99'950 + i);
  // Lines across a rotation boundary: more than one file's worth.
  auto more = logs.Read({"", 0, 3000});
  REQUIRE(more.ok());
  REQUIRE(more->size() == 3000);
  CHECK(NumberOf(more->front().message) == 97'000);
  CHECK(NumberOf(more->back().message) == 99'999);
}

TEST_CASE("a read of everything stops at the byte bound, newest lines first", "[runtime][logs]") {
  TempDir dir;
  ServiceLogs logs(dir.path(), "v1", LogPolicy{1 << 20, 100});
  Fill(logs, 0, 100'000);  // about 9 MB
  LogQuery query{"", 0, -1};
  query.max_bytes = 1 << 20;
  auto read = logs.Read(query);
  REQUIRE(read.ok());
  // One MiB of ~94-byte lines: the newest ~11,000, complete and in order.
  CHECK(read->size() > 10'000);
  CHECK(read->size() < 11'500);
  CHECK(NumberOf(read->back().message) == 99'999);
  for (size_t i = 1; i < read->size(); ++i) {
    CHECK(NumberOf((*read)[i].message) == NumberOf((*read)[i - 1].message) + 1);
  }
}

TEST_CASE("following with no history gets only the records appended after it began",
          "[runtime][logs]") {
  TempDir dir;
  ServiceLogs logs(dir.path(), "v1", LogPolicy{});
  Fill(logs, 0, 1000);
  auto queue = std::make_shared<ServiceLogs::Queue>(100, 1 << 20, "records", [] {});
  auto token = logs.Follow({"", 0, 0}, queue);
  REQUIRE(token.ok());
  CHECK_FALSE(queue->Next().has_value());
  Fill(logs, 1000, 2);
  CHECK(NumberOf(queue->Next()->message) == 1000);
  CHECK(NumberOf(queue->Next()->message) == 1001);
  CHECK_FALSE(queue->Next().has_value());
  CHECK(logs.history_files_opened() == 0);  // no file was opened for history
  logs.Unsubscribe(*token);
  // "All lines since now" (how `-n 0` used to go over the wire) does open the newest file.
  auto since_now = std::make_shared<ServiceLogs::Queue>(100, 1 << 20, "records", [] {});
  auto again = logs.Follow({"", 1'000'000 + 1002, -1}, since_now);
  REQUIRE(again.ok());
  CHECK(logs.history_files_opened() > 0);
  logs.Unsubscribe(*again);
}

TEST_CASE("with since = now, files last written before it are not read", "[runtime][logs]") {
  TempDir dir;
  ServiceLogs logs(dir.path(), "v1", LogPolicy{});
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  // A record with a time after `now` in a file last written an hour ago: were the file read,
  // the reader would return the record.
  logs.Append({now + 3'600'000, "svc-0", "stdout", "marked later", ""});
  namespace fs = std::filesystem;
  fs::last_write_time(dir.path() + "/svc-0.log",
                      fs::last_write_time(dir.path() + "/svc-0.log") - std::chrono::hours(1));
  auto read = logs.Read({"", now, -1});
  REQUIRE(read.ok());
  CHECK(read->empty());
}

TEST_CASE("a file stamped a little before its last record is still read from that record's time",
          "[runtime][logs]") {
  TempDir dir;
  ServiceLogs logs(dir.path(), "v1", LogPolicy{});
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  // The kernel's coarse clock stamps the file a tick (here: 500 ms) behind the record's time.
  logs.Append({now + 500, "build", "stderr", "oops", ""});
  auto read = logs.Read({"", now + 500, -1});
  REQUIRE(read.ok());
  REQUIRE(read->size() == 1);
  CHECK((*read)[0].message == "oops");
}

TEST_CASE("records appended while a follower's history is read are neither lost nor doubled",
          "[runtime][logs]") {
  TempDir dir;
  // Small files: appends during the read rotate the files the reader is going through.
  ServiceLogs logs(dir.path(), "v1", LogPolicy{64 << 10, 100});
  Fill(logs, 0, 50'000);
  auto queue = std::make_shared<ServiceLogs::Queue>(200'000, 64 << 20, "records", [] {});
  std::thread writer([&] { Fill(logs, 50'000, 20'000); });
  auto token = logs.Follow({"", 0, 5'000}, queue);
  writer.join();
  REQUIRE(token.ok());
  std::vector<int> got;
  while (auto record = queue->Next()) got.push_back(NumberOf(record->message));
  REQUIRE(queue->status().ok());
  // The history (the last 5,000 before the follow began), then every later record once.
  REQUIRE(got.size() >= 20'000);
  for (size_t i = 1; i < got.size(); ++i) REQUIRE(got[i] == got[i - 1] + 1);
  CHECK(got.back() == 69'999);
  CHECK(got.front() >= 45'000);
  logs.Unsubscribe(*token);
}

TEST_CASE("output is logged while a follower's history is still being handed out",
          "[runtime][logs]") {
  TempDir dir;
  ServiceLogs logs(dir.path(), "v1", LogPolicy{});
  Fill(logs, 0, 100);
  // The reader stops at its first history record until an append has gone through: were the
  // history read under the lock that appends take, the append could not finish.
  std::atomic<bool> appended{false};
  std::atomic<bool> waiting{false};
  auto queue = std::make_shared<ServiceLogs::Queue>(1000, 1 << 20, "records", [&] {
    if (appended || waiting.exchange(true)) return;
    micro::testing::WaitFor([&] { return appended.load(); }, std::chrono::seconds(10));
  });
  std::thread follower([&] { (void)logs.Follow({"", 0, 10}, queue); });
  REQUIRE(micro::testing::WaitFor([&] { return waiting.load(); }, std::chrono::seconds(10)));
  std::thread writer([&] {
    Fill(logs, 100, 1);
    appended = true;
  });
  const bool went_through =
      micro::testing::WaitFor([&] { return appended.load(); }, std::chrono::seconds(5));
  appended = true;  // let the reader go on either way
  writer.join();
  follower.join();
  CHECK(went_through);
  // History first, then the record appended meanwhile.
  std::vector<int> got;
  while (auto record = queue->Next()) got.push_back(NumberOf(record->message));
  CHECK(got == std::vector<int>{90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100});
}

TEST_CASE("past the open-file budget, appends do not keep their files open", "[runtime][logs]") {
  TempDir dir;
  auto budget = std::make_shared<OpenFileBudget>(1);
  ServiceLogs logs(dir.path(), "v1", LogPolicy{}, budget);
  for (int i = 0; i < 3; ++i) {
    logs.Append({1'000 + i, "svc-" + std::to_string(i), "stdout", "hello", ""});
  }
  CHECK(budget->open() == 1);
  auto read = logs.Read({"", 0, -1});
  REQUIRE(read.ok());
  CHECK(read->size() == 3);
  logs.CloseFiles();
  CHECK(budget->open() == 0);
}

}  // namespace
}  // namespace micro::runtime
