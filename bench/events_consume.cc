// Consume throughput of micro's events: joins a new group at sequence 1 of a topic, reads
// --count events (acknowledging each unless --auto-ack) and prints one JSON object with the rate.
//
//   micro-bench-events-consume --target 127.0.0.1:PORT --topic bench --group g1 --count 100000
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench/bench_auth.h"
#include "micro/events/v1/events.grpc.pb.h"

namespace v1 = micro::events::v1;

int main(int argc, char** argv) {
  std::string target, topic = "bench", group = "bench";
  long count = 100000;
  bool auto_ack = false;
  unsigned in_flight = 1024;
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
    else if (arg == "--group")
      group = value();
    else if (arg == "--count")
      count = std::atol(value().c_str());
    else if (arg == "--max-in-flight")
      in_flight = static_cast<unsigned>(std::atol(value().c_str()));
    else if (arg == "--auto-ack")
      auto_ack = true;
    else {
      std::fprintf(stderr,
                   "usage: micro-bench-events-consume --target HOST:PORT [--topic T] [--group G] "
                   "[--count N] [--max-in-flight N] [--auto-ack]\n");
      return 2;
    }
  }
  if (target.empty() || count <= 0) {
    std::fprintf(stderr, "--target and a positive --count are required\n");
    return 2;
  }
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(64 << 20);
  auto stub = v1::Events::NewStub(
      grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), channel_args));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  AddBenchToken(context);
  auto stream = stub->Consume(&context);
  v1::ConsumeRequest sub;
  sub.mutable_subscription()->set_topic(topic);
  sub.mutable_subscription()->set_group(group);
  sub.mutable_subscription()->set_start_sequence(1);
  sub.mutable_subscription()->set_auto_ack(auto_ack);
  sub.mutable_subscription()->set_max_in_flight(in_flight);
  if (!stream->Write(sub)) return 1;
  v1::Event event;
  v1::ConsumeRequest ack;
  ack.mutable_ack()->set_success(true);
  long received = 0;
  auto start = std::chrono::steady_clock::now();
  while (received < count && stream->Read(&event)) {
    if (received == 0) start = std::chrono::steady_clock::now();  // from the first event
    ++received;
    if (!auto_ack) {
      ack.mutable_ack()->set_id(event.id());
      if (!stream->Write(ack)) break;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stream->WritesDone();
  while (stream->Read(&event)) {
  }
  grpc::Status status = stream->Finish();
  std::printf("{\"events\": %ld, \"seconds\": %.3f, \"per_second\": %.0f, \"status\": \"%s\"}\n",
              received, seconds, seconds > 0 ? received / seconds : 0.0,
              status.ok() ? "OK" : status.error_message().c_str());
  return received == count ? 0 : 1;
}
