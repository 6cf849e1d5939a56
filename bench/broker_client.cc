// The micro side of bench/broker.sh: one publisher and N subscribers of one topic on micro's
// broker, each on a gRPC channel (TCP connection) of its own. The publisher uses PublishStream
// with batches of BATCH messages; the subscribers use SubscribeBatches.
//
//   micro-bench-broker-client ADDRESS TOPIC SUBSCRIBERS SIZE MESSAGES RATE BATCH
//
// Message layout, pacing and the printed line are those of micro-bench-nats-client
// (broker_nats_client.c): msgs_per_s p50_us p99_us received dropped elapsed_ms.
#include <grpcpp/grpcpp.h>
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_auth.h"
#include "micro/broker/v1/broker.grpc.pb.h"

namespace {

namespace v1 = micro::broker::v1;

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// A channel of its own: gRPC shares one connection between channels with equal arguments.
std::shared_ptr<grpc::Channel> Channel(const std::string& address, int index) {
  grpc::ChannelArguments args;
  args.SetInt("micro.bench.channel", index);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

struct Subscriber {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::MessageBatch>> stream;
  std::vector<int64_t> latencies;
  std::atomic<int64_t> received{0};
  std::atomic<int64_t> dropped{0};
  std::atomic<int64_t> last_ns{0};
  std::thread thread;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: %s ADDRESS TOPIC SUBSCRIBERS SIZE MESSAGES RATE BATCH\n", argv[0]);
    return 2;
  }
  // gRPC receives each batch (up to about 1 MiB) into freshly allocated buffers; with glibc's
  // default thresholds those are mapped and unmapped on every receive, and the page faults cost
  // more than the messages. Keeping them in the heap is what a high-throughput client does.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  const std::string address = argv[1], topic = argv[2];
  const int subscribers = std::atoi(argv[3]);
  const int size = std::max(16, std::atoi(argv[4]));
  const int64_t messages = std::atoll(argv[5]);
  const double rate = std::atof(argv[6]);
  const int batch_size = std::max(1, std::atoi(argv[7]));

  std::vector<std::unique_ptr<Subscriber>> subs;
  for (int i = 0; i < subscribers; ++i) {
    auto s = std::make_unique<Subscriber>();
    s->latencies.reserve(static_cast<size_t>(messages));
    auto stub = v1::Broker::NewStub(Channel(address, i + 1));
    v1::SubscribeBatchesRequest request;
    request.set_topic(topic);
    request.set_max_messages(4096);
    AddBenchToken(s->context);
    s->stream = stub->SubscribeBatches(&s->context, request);
    s->stream->WaitForInitialMetadata();  // subscribed: nothing published from now on is missed
    Subscriber* raw = s.get();
    s->thread = std::thread([raw, messages] {
      v1::MessageBatch batch;
      while (raw->stream->Read(&batch)) {
        const int64_t now = NowNs();
        for (const v1::Message& m : batch.messages()) {
          int64_t sent = 0;
          if (m.body().size() >= 8) std::memcpy(&sent, m.body().data(), 8);
          if (static_cast<int64_t>(raw->latencies.size()) < messages) {
            raw->latencies.push_back(now - sent);
          }
        }
        raw->dropped += static_cast<int64_t>(batch.dropped());
        raw->last_ns = now;
        raw->received += batch.messages_size();
      }
    });
    subs.push_back(std::move(s));
  }

  auto publisher = v1::Broker::NewStub(Channel(address, 0));
  grpc::ClientContext publish_context;
  v1::PublishStreamResponse response;
  AddBenchToken(publish_context);
  auto writer = publisher->PublishStream(&publish_context, &response);
  std::string payload(static_cast<size_t>(size), '\0');
  v1::PublishBatch batch;
  const int64_t start = NowNs();
  for (int64_t n = 0; n < messages;) {
    batch.Clear();
    for (int i = 0; i < batch_size && n < messages; ++i, ++n) {
      if (rate > 0) {
        const int64_t due = start + static_cast<int64_t>(static_cast<double>(n) * 1e9 / rate);
        while (NowNs() < due) {
        }
      }
      const int64_t sent = NowNs();
      std::memcpy(payload.data(), &sent, 8);
      std::memcpy(payload.data() + 8, &n, 8);
      v1::PublishRequest* request = batch.add_requests();
      request->set_topic(topic);
      request->mutable_message()->set_body(payload);
    }
    if (!writer->Write(batch)) break;
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) {
    std::fprintf(stderr, "PublishStream: %s\n", status.error_message().c_str());
    return 1;
  }

  // Until every subscriber has everything (delivered or counted as dropped), or none made
  // progress for 2 s.
  int64_t total = -1, idle_since = NowNs();
  for (;;) {
    int64_t sum = 0;
    for (const auto& s : subs) sum += s->received + s->dropped;
    if (sum >= messages * subscribers) break;
    if (sum != total) {
      total = sum;
      idle_since = NowNs();
    } else if (NowNs() - idle_since > 2'000'000'000) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  int64_t received = 0, dropped = 0, last = start;
  std::vector<int64_t> all;
  for (auto& s : subs) {
    s->context.TryCancel();
    s->thread.join();
    (void)s->stream->Finish();
    received += s->received;
    dropped += s->dropped;
    last = std::max<int64_t>(last, s->last_ns);
    all.insert(all.end(), s->latencies.begin(), s->latencies.end());
  }
  std::sort(all.begin(), all.end());
  const double elapsed_s = static_cast<double>(last - start) / 1e9;
  const size_t k = all.size();
  std::printf(
      "msgs_per_s=%.0f p50_us=%.0f p99_us=%.0f received=%lld dropped=%lld elapsed_ms=%.0f\n",
      elapsed_s > 0 ? static_cast<double>(received) / subscribers / elapsed_s : 0.0,
      k ? static_cast<double>(all[k / 2]) / 1e3 : 0.0,
      k ? static_cast<double>(all[k * 99 / 100]) / 1e3 : 0.0, static_cast<long long>(received),
      static_cast<long long>(dropped), elapsed_s * 1e3);
  return 0;
}
