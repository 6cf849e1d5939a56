// Publish throughput of micro's events on PublishStream: sends --count events of --size bytes
// in batches of --batch, with at most --in-flight events unacknowledged (whole batches), and
// prints one JSON object with the rate. Every event is durable when its batch is acknowledged.
//
//   micro-bench-events-publish --target 127.0.0.1:PORT --topic bench --count 100000 --size 128
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "bench/bench_auth.h"
#include "micro/events/v1/events.grpc.pb.h"

namespace v1 = micro::events::v1;

int main(int argc, char** argv) {
  std::string target, topic = "bench";
  long count = 100000, size = 128, batch_size = 64, in_flight = 256;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--target")
      target = value();
    else if (arg == "--topic")
      topic = value();
    else if (arg == "--count")
      count = std::atol(value().c_str());
    else if (arg == "--size")
      size = std::atol(value().c_str());
    else if (arg == "--batch")
      batch_size = std::atol(value().c_str());
    else if (arg == "--in-flight")
      in_flight = std::atol(value().c_str());
    else {
      std::fprintf(stderr,
                   "usage: micro-bench-events-publish --target HOST:PORT [--topic T] [--count N] "
                   "[--size BYTES] [--batch N] [--in-flight N]\n");
      return 2;
    }
  }
  if (target.empty() || count <= 0 || size < 0 || batch_size <= 0 || in_flight < batch_size) {
    std::fprintf(stderr, "--target, a positive --count and --batch, --in-flight >= --batch\n");
    return 2;
  }
  auto stub = v1::Events::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  AddBenchToken(context);
  auto stream = stub->PublishStream(&context);

  std::mutex mu;
  std::condition_variable cv;
  long unacked = 0;
  long acked = 0, errors = 0;
  const auto start = std::chrono::steady_clock::now();
  std::thread reader([&] {
    v1::PublishAcks acks;
    while (stream->Read(&acks)) {
      long bad = 0;
      for (const auto& ack : acks.acks()) {
        if (ack.code() != 0 && errors + bad == 0) {
          std::fprintf(stderr, "first error: %d %s\n", ack.code(), ack.error().c_str());
        }
        bad += ack.code() != 0;
      }
      std::lock_guard lock(mu);
      acked += acks.acks_size();
      errors += bad;
      unacked -= acks.acks_size();
      cv.notify_one();
    }
    std::lock_guard lock(mu);
    unacked = -1;  // the stream ended
    cv.notify_one();
  });
  v1::PublishBatch batch;
  for (long sent = 0; sent < count;) {
    const long n = std::min(batch_size, count - sent);
    batch.Clear();
    for (long i = 0; i < n; ++i) {
      v1::PublishRequest* request = batch.add_requests();
      request->set_topic(topic);
      request->set_payload(std::string(static_cast<size_t>(size), 'p'));
    }
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return unacked < 0 || unacked + n <= in_flight; });
      if (unacked < 0) break;
      unacked += n;
    }
    if (!stream->Write(batch)) break;
    sent += n;
  }
  stream->WritesDone();
  reader.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  grpc::Status status = stream->Finish();
  std::printf(
      "{\"events\": %ld, \"errors\": %ld, \"seconds\": %.3f, \"per_second\": %.0f, "
      "\"status\": \"%s\"}\n",
      acked, errors, seconds, seconds > 0 ? acked / seconds : 0.0,
      status.ok() ? "OK" : status.error_message().c_str());
  return acked == count && errors == 0 && status.ok() ? 0 : 1;
}
