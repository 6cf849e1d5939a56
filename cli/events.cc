// `micro events`: durable event streams (micro.events.v1.Events).
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <iostream>
#include <iterator>
#include <limits>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/stop_signals.h"
#include "cli/table.h"
#include "micro/events/v1/events.grpc.pb.h"

namespace micro::cli {
namespace {

namespace v1 = micro::events::v1;

int UsageError(const std::string& subcommand, const std::string& message) {
  std::cerr << "error: " << message << "; see 'micro events " << subcommand << " --help'\n";
  return 2;
}

// The numeric flag `name`, or `fallback` when absent; INVALID_ARGUMENT naming the flag unless
// it is a whole number from `min` to `max`.
Result<uint64_t> NumberFlag(const ParsedArgs& args, const std::string& name, uint64_t min,
                            uint64_t max, uint64_t fallback = 0) {
  if (!args.Has(name)) return fallback;
  const std::string text = args.Get(name);
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n < min || n > max) {
    return absl::InvalidArgumentError("--" + name + " must be a whole number from " +
                                      std::to_string(min) + " to " + std::to_string(max) +
                                      ", not '" + text + "'");
  }
  return n;
}

// "90s", "15m", "2h", "7d" (or plain seconds) in milliseconds.
Result<int64_t> ParseDuration(const std::string& flag, const std::string& text) {
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  const std::string unit(end, text.data() + text.size());
  int64_t scale = 0;
  if (unit.empty() || unit == "s") scale = 1000;
  if (unit == "ms") scale = 1;
  if (unit == "m") scale = 60'000;
  if (unit == "h") scale = 3'600'000;
  if (unit == "d") scale = 86'400'000;
  if (ec != std::errc() || n <= 0 || scale == 0 ||
      n > std::numeric_limits<int64_t>::max() / scale) {
    return absl::InvalidArgumentError(
        "--" + flag + " takes a positive duration like 90s, 15m, 2h or 7d, not '" + text + "'");
  }
  return n * scale;
}

std::unique_ptr<v1::Events::Stub> Stub(const ClientOptions& options) {
  return v1::Events::NewStub(Connect(options));
}

std::string OneLineJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions json;
  json.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, json);
  return out;
}

int Publish(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.size() < 2) return UsageError("publish", "missing TOPIC or PAYLOAD");
  v1::PublishRequest request;
  request.set_topic(args.positionals[0]);
  if (args.positionals[1] == "-") {
    request.set_payload(std::string(std::istreambuf_iterator<char>(std::cin), {}));
  } else {
    request.set_payload(args.positionals[1]);
  }
  for (const std::string& entry : args.All("metadata")) {
    const size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) {
      return UsageError("publish", "--metadata takes KEY=VALUE, not '" + entry + "'");
    }
    (*request.mutable_metadata())[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  request.set_id(args.Get("id"));
  grpc::ClientContext context;
  Prepare(context, options);
  v1::PublishResponse response;
  grpc::Status status = Stub(options)->Publish(&context, request, &response);
  if (!status.ok()) return ReportError(status, options);
  if (options.output == Output::kJson) {
    PrintJson(response);
  } else {
    std::cout << (response.duplicate() ? "duplicate of sequence " : "published sequence ")
              << response.sequence() << " id " << response.id() << "\n";
  }
  return 0;
}

void PrintEvents(const v1::ReadResponse& response) {
  if (response.events_size() == 0) {
    std::cout << "no events\n";
    return;
  }
  Table table({"SEQUENCE", "ID", "TIME (UNIX MS)", "PAYLOAD", "METADATA"});
  for (const v1::Event& e : response.events()) {
    table.Add({std::to_string(e.sequence()), e.id(), std::to_string(e.timestamp_unix_ms()),
               Displayable(e.payload()), JoinMetadata(e.metadata())});
  }
  table.Print(std::cout);
}

int Read(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.empty()) return UsageError("read", "missing TOPIC");
  auto start = NumberFlag(args, "start-sequence", 0, std::numeric_limits<uint64_t>::max());
  if (!start.ok()) return UsageError("read", std::string(start.status().message()));
  auto limit = NumberFlag(args, "limit", 0, 1000);
  if (!limit.ok()) return UsageError("read", std::string(limit.status().message()));
  v1::ReadRequest request;
  request.set_topic(args.positionals[0]);
  request.set_start_sequence(*start);
  request.set_limit(static_cast<uint32_t>(*limit));
  grpc::ClientContext context;
  Prepare(context, options);
  v1::ReadResponse response;
  grpc::Status status = Stub(options)->Read(&context, request, &response);
  if (!status.ok()) return ReportError(status, options);
  options.output == Output::kJson ? PrintJson(response) : PrintEvents(response);
  return 0;
}

int Topics(const ParsedArgs&, const ClientOptions& options) {
  grpc::ClientContext context;
  Prepare(context, options);
  v1::TopicsResponse response;
  grpc::Status status = Stub(options)->Topics(&context, v1::TopicsRequest(), &response);
  if (!status.ok()) return ReportError(status, options);
  if (options.output == Output::kJson) {
    PrintJson(response);
    return 0;
  }
  if (response.topics_size() == 0) {
    std::cout << "no topics\n";
    return 0;
  }
  Table table({"TOPIC", "FIRST", "LAST", "EVENTS", "BYTES"});
  for (const v1::Topic& t : response.topics()) {
    table.Add({t.name(), std::to_string(t.first_sequence()), std::to_string(t.last_sequence()),
               std::to_string(t.count()), std::to_string(t.bytes())});
  }
  table.Print(std::cout);
  return 0;
}

// "7d", "36h", "90s", "1500ms": the largest unit that divides the age.
std::string FormatAge(int64_t ms) {
  for (auto [unit, scale] :
       {std::pair{"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1000}}) {
    if (ms % scale == 0) return std::to_string(ms / scale) + unit;
  }
  return std::to_string(ms) + "ms";
}

std::string Bound(const std::string& value, bool zero, bool own) {
  std::string text = zero ? "none" : value;
  return own ? text : text + " (default)";
}

// What applies to the topic, and which bounds it set itself rather than follow the default.
void PrintRetention(const std::string& topic, const v1::Retention& r, const v1::Retention& own) {
  Table table({"TOPIC", "MAX AGE", "MAX EVENTS", "MAX BYTES"});
  table.Add({topic, Bound(FormatAge(r.max_age_ms()), r.max_age_ms() == 0, own.has_max_age_ms()),
             Bound(std::to_string(r.max_events()), r.max_events() == 0, own.has_max_events()),
             Bound(std::to_string(r.max_bytes()), r.max_bytes() == 0, own.has_max_bytes())});
  table.Print(std::cout);
}

int Retention(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.empty()) return UsageError("retention", "missing TOPIC");
  const std::string& topic = args.positionals[0];
  const bool change =
      args.Has("max-age") || args.Has("max-events") || args.Has("max-bytes") || args.Has("reset");
  if (!change) {  // show
    grpc::ClientContext context;
    Prepare(context, options);
    v1::TopicsResponse response;
    grpc::Status status = Stub(options)->Topics(&context, v1::TopicsRequest(), &response);
    if (!status.ok()) return ReportError(status, options);
    for (const v1::Topic& t : response.topics()) {
      if (t.name() != topic) continue;
      if (options.output == Output::kJson) {
        v1::ConfigureResponse shown;
        *shown.mutable_retention() = t.retention();
        *shown.mutable_configured() = t.configured();
        PrintJson(shown);
      } else {
        PrintRetention(topic, t.retention(), t.configured());
      }
      return 0;
    }
    return ReportError(absl::NotFoundError("topic '" + topic +
                                           "' has no events and no retention of its own; see "
                                           "'micro events topics'"),
                       options);
  }
  v1::ConfigureRequest request;
  request.set_topic(topic);
  request.set_reset(args.Has("reset"));
  if (args.Has("max-age")) {
    const std::string text = args.Get("max-age");
    if (text == "0") {
      request.mutable_retention()->set_max_age_ms(0);
    } else {
      auto age = ParseDuration("max-age", text);
      if (!age.ok()) return UsageError("retention", std::string(age.status().message()));
      request.mutable_retention()->set_max_age_ms(*age);
    }
  }
  if (args.Has("max-events")) {
    auto n = NumberFlag(args, "max-events", 0, std::numeric_limits<uint64_t>::max());
    if (!n.ok()) return UsageError("retention", std::string(n.status().message()));
    request.mutable_retention()->set_max_events(*n);
  }
  if (args.Has("max-bytes")) {
    auto n = NumberFlag(args, "max-bytes", 0, std::numeric_limits<uint64_t>::max());
    if (!n.ok()) return UsageError("retention", std::string(n.status().message()));
    request.mutable_retention()->set_max_bytes(*n);
  }
  grpc::ClientContext context;
  Prepare(context, options);
  v1::ConfigureResponse response;
  grpc::Status status = Stub(options)->Configure(&context, request, &response);
  if (!status.ok()) return ReportError(status, options);
  if (options.output == Output::kJson) {
    PrintJson(response);
  } else {
    PrintRetention(topic, response.retention(), response.configured());
  }
  return 0;
}

Result<v1::Subscription> BuildSubscription(const ParsedArgs& args) {
  v1::Subscription sub;
  sub.set_topic(args.positionals[0]);
  sub.set_group(args.Get("group"));
  if (args.Has("start-sequence") && args.Has("since")) {
    return absl::InvalidArgumentError("give --start-sequence or --since, not both");
  }
  auto start = NumberFlag(args, "start-sequence", 1, std::numeric_limits<uint64_t>::max());
  if (!start.ok()) return start.status();
  sub.set_start_sequence(*start);
  if (args.Has("since")) {
    auto since = ParseDuration("since", args.Get("since"));
    if (!since.ok()) return since.status();
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    sub.set_start_unix_ms(std::max<int64_t>(1, now - *since));
  }
  sub.set_auto_ack(args.Has("auto-ack"));
  if (args.Has("ack-wait")) {
    auto wait = ParseDuration("ack-wait", args.Get("ack-wait"));
    if (!wait.ok()) return wait.status();
    sub.set_ack_wait_ms(*wait);
  }
  auto retries = NumberFlag(args, "retry-limit", 0, std::numeric_limits<int32_t>::max());
  if (!retries.ok()) return retries.status();
  sub.set_retry_limit(static_cast<int32_t>(*retries));
  sub.set_dead_letter_topic(args.Get("dead-letter"));
  auto in_flight = NumberFlag(args, "max-in-flight", 0, 4096);
  if (!in_flight.ok()) return in_flight.status();
  sub.set_max_in_flight(static_cast<uint32_t>(*in_flight));
  return sub;
}

int Consume(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.empty()) return UsageError("consume", "missing TOPIC");
  auto sub = BuildSubscription(args);
  if (!sub.ok()) return UsageError("consume", std::string(sub.status().message()));
  auto count = NumberFlag(args, "count", 0, std::numeric_limits<uint32_t>::max());
  if (!count.ok()) return UsageError("consume", std::string(count.status().message()));
  if (*count != 0 && !args.Has("max-in-flight")) {
    sub->set_max_in_flight(static_cast<uint32_t>(std::min<uint64_t>(*count, 4096)));
  }
  const bool nack = args.Has("nack");
  BlockStopSignals();
  grpc::ClientContext context;
  Prepare(context, options);
  context.set_deadline(std::chrono::system_clock::time_point::max());  // until Ctrl-C or --count
  CancelOnSignal cancel(context);
  auto stream = Stub(options)->Consume(&context);
  v1::ConsumeRequest first;
  *first.mutable_subscription() = *sub;
  stream->Write(first);
  const bool json = options.output == Output::kJson;
  uint64_t received = 0;
  v1::Event event;
  while ((*count == 0 || received < *count) && stream->Read(&event)) {
    ++received;
    if (json) {
      std::cout << OneLineJson(event) << "\n";
    } else {
      std::cout << event.sequence() << "  " << event.id() << "  " << Displayable(event.payload())
                << "  " << JoinMetadata(event.metadata()) << "  (delivery "
                << event.delivery_count() << ")\n";
    }
    std::cout.flush();
    if (!sub->auto_ack()) {
      v1::ConsumeRequest ack;
      ack.mutable_ack()->set_id(event.id());
      ack.mutable_ack()->set_success(!nack);
      stream->Write(ack);
    }
  }
  // Closing our side ends the consumer; the daemon ends the stream once it has processed every
  // ack before that. With --count, max_in_flight is the count: nothing else was sent to us.
  stream->WritesDone();
  while (stream->Read(&event)) {
  }
  grpc::Status status = stream->Finish();
  if (cancel.cancelled()) return 0;
  if (!status.ok()) return ReportError(status, options);
  return 0;
}

int PublishCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro events publish TOPIC PAYLOAD [flags]",
      "Appends an event to TOPIC and prints its sequence and id once it is on disk.\n"
      "PAYLOAD '-' reads the payload from stdin. With --id, publishing the same id to the\n"
      "topic again within 2 minutes stores nothing and prints the first sequence.",
      {{"metadata", 'm', "KEY=VALUE", "metadata entry of the event", true},
       {"id", 0, "ID", "the event's id, for deduplication (default: a new one)"}},
      2};
  return RunClientCommand(spec, args, env, &Publish);
}

int ConsumeCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro events consume TOPIC [flags]",
      "Receives TOPIC's events as a member of a group and prints one line per event (JSON: one\n"
      "object per line) until Ctrl-C or --count events. Each event is acknowledged once\n"
      "printed (--auto-ack: by the daemon as it sends it). A group that exists resumes where\n"
      "it stopped; a new one starts at --start-sequence, at --since, or with the next event.\n"
      "Without --group the consumer has a group of its own that is not kept.",
      {{"group", 'g', "GROUP", "the consumer group (default: one of its own)"},
       {"start-sequence", 0, "N", "a new group starts at sequence N"},
       {"since", 0, "DURATION",
        "a new group starts at the first event of the last DURATION "
        "(90s, 15m, 2h, 7d)"},
       {"auto-ack", 0, "", "the daemon acknowledges each event as it sends it"},
       {"ack-wait", 0, "DURATION", "redeliver an event not acknowledged this long (default 30s)"},
       {"retry-limit", 0, "N",
        "after N redeliveries an event goes to the dead-letter topic "
        "(default 0: no limit)"},
       {"dead-letter", 0, "TOPIC", "the dead-letter topic (default: TOPIC.dead)"},
       {"max-in-flight", 0, "N", "unacknowledged events at once (default 256, at most 4096)"},
       {"count", 0, "N", "exit after N events"},
       {"nack", 0, "", "acknowledge negatively (ask for redelivery) instead; for testing"}},
      1};
  return RunClientCommand(spec, args, env, &Consume);
}

int ReadCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro events read TOPIC [flags]",
      "Prints stored events of TOPIC in order from --start-sequence (default: the oldest\n"
      "stored). At most 1000 events and 3 MiB per call; read again from the last sequence + 1.",
      {{"start-sequence", 0, "N", "the first sequence to print"},
       {"limit", 'l', "N", "at most N events (1 to 1000; default 1000)"}},
      1};
  return RunClientCommand(spec, args, env, &Read);
}

int TopicsCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{"micro events topics [flags]",
                         "Prints the topics of the namespace with their first and last stored "
                         "sequence, events and bytes.",
                         {},
                         0};
  return RunClientCommand(spec, args, env, &Topics);
}

int RetentionCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro events retention TOPIC [flags]",
      "Prints TOPIC's retention, or with flags sets the topic's own bounds, which replace the\n"
      "daemon's defaults (events.retention_*) for that topic; the bounds not given stay as they\n"
      "are. The oldest events past any bound are removed within a second. 0: no bound.",
      {{"max-age", 0, "DURATION", "remove events older than this (90s, 15m, 2h, 7d; 0: none)"},
       {"max-events", 0, "N", "keep at most N events (0: none)"},
       {"max-bytes", 0, "N", "keep at most N bytes of keys and events (0: none)"},
       {"reset", 0, "", "drop the topic's own bounds first: the defaults apply again"}},
      1};
  return RunClientCommand(spec, args, env, &Retention);
}

const std::vector<Subcommand> kSubcommands = {
    {"publish", "append an event to a topic", &PublishCommand},
    {"consume", "receive a topic's events as a member of a group", &ConsumeCommand},
    {"read", "print stored events of a topic", &ReadCommand},
    {"topics", "list the topics", &TopicsCommand},
    {"retention", "show or set a topic's retention", &RetentionCommand},
};

}  // namespace

int EventsCommand(const std::vector<std::string>& args, const Env& env) {
  return RunSubcommand(
      "events",
      "Durable event streams: topics of events with sequence numbers, consumer groups "
      "with\nacknowledgements and redelivery, and replay. See docs/events.md.",
      kSubcommands, args, env);
}

}  // namespace micro::cli
