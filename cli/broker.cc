// `micro broker publish` and `micro broker subscribe`: the broker (micro.broker.v1.Broker) from
// the command line.
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/stop_signals.h"
#include "core/limits.h"
#include "core/names.h"
#include "micro/broker/v1/broker.grpc.pb.h"

namespace micro::cli {
namespace {

namespace v1 = micro::broker::v1;

std::unique_ptr<v1::Broker::Stub> Stub(const ClientOptions& options) {
  return v1::Broker::NewStub(Connect(options));
}

int UsageError(const std::string& command, const std::string& message) {
  std::cerr << "error: " << message << "; see 'micro broker " << command << " --help'\n";
  return 2;
}

int Publish(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.size() != 2) return UsageError("publish", "give TOPIC and MESSAGE");
  v1::PublishRequest request;
  request.set_topic(args.positionals[0]);
  request.mutable_message()->set_body(args.positionals[1]);
  for (const std::string& item : args.All("header")) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return UsageError("publish", "--header takes KEY=VALUE, not '" + item + "'");
    }
    (*request.mutable_message()->mutable_header())[item.substr(0, eq)] = item.substr(eq + 1);
  }
  v1::PublishResponse response;
  grpc::ClientContext context;
  Prepare(context, options);
  grpc::Status status = Stub(options)->Publish(&context, request, &response);
  if (!status.ok()) return ReportError(status, options);
  if (options.output == Output::kJson) std::cout << "{}\n";
  return 0;
}

// One line per message. Table: TOPIC, the header as KEY=VALUE items in brackets (when it has
// any), then the body. JSON: {"topic":..., "header":{...}, "body":...}, the body as text (bytes
// that are not UTF-8 become U+FFFD).
void PrintMessage(const v1::Message& message, bool json) {
  if (json) {
    nlohmann::json line = {
        {"topic", message.topic()}, {"header", nlohmann::json::object()}, {"body", message.body()}};
    for (const auto& [key, value] : message.header()) line["header"][key] = value;
    std::cout << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return;
  }
  std::cout << message.topic();
  if (!message.header().empty()) {
    std::map<std::string, std::string> sorted;
    for (const auto& [key, value] : message.header()) sorted.emplace(key, value);
    std::cout << " [";
    const char* separator = "";
    for (const auto& [key, value] : sorted) {
      std::cout << separator << key << "=" << value;
      separator = " ";
    }
    std::cout << "]";
  }
  std::cout << " " << message.body() << "\n";
}

int Subscribe(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.size() != 1) return UsageError("subscribe", "give one TOPIC");
  // Checked here too, so that a bad topic is never announced as subscribed below.
  Status valid = limits::CheckTopic(args.positionals[0], /*wildcards=*/true);
  if (valid.ok() && args.Has("queue")) {
    valid = CheckName("queue", args.Get("queue"), limits::kQueueNameBytes, Charset::kName);
  }
  if (!valid.ok()) return ReportError(valid, options);
  BlockStopSignals();
  v1::SubscribeRequest request;
  request.set_topic(args.positionals[0]);
  request.set_queue(args.Get("queue"));
  grpc::ClientContext context;
  Prepare(context, options);
  context.set_deadline(std::chrono::system_clock::time_point::max());  // until Ctrl-C
  CancelOnSignal cancel(context);
  auto reader = Stub(options)->Subscribe(&context, request);
  // The daemon answers with headers once the subscription is in place: from then on nothing
  // published is missed. Said on stderr, so stdout holds only messages.
  reader->WaitForInitialMetadata();
  if (!cancel.cancelled()) {
    std::cerr << "subscribed to '" << request.topic() << "'"
              << (request.queue().empty() ? "" : " in queue '" + request.queue() + "'")
              << "; Ctrl-C to stop" << std::endl;
  }
  const bool json = options.output == Output::kJson;
  v1::Message message;
  while (reader->Read(&message)) {
    PrintMessage(message, json);
    std::cout.flush();
  }
  grpc::Status status = reader->Finish();
  if (cancel.cancelled()) return 0;  // Ctrl-C: the normal end
  if (!status.ok()) return ReportError(status, options);
  return 0;
}

void PrintUsage(std::ostream& out) {
  out << "Usage: micro broker <publish|subscribe> TOPIC [MESSAGE] [flags]\n\n"
         "Publishes messages to topics and subscribes to them, in the caller's namespace.\n"
         "Topics are tokens separated by dots (orders.created); a subscription may use '*' for\n"
         "any one token and a last '>' for one or more tokens. Delivery is at most once.\n\n"
         "Commands:\n"
         "  publish TOPIC MESSAGE    send MESSAGE to the subscribers of TOPIC\n"
         "  subscribe TOPIC          print every message published to TOPIC until Ctrl-C\n\n"
         "Run 'micro broker <command> --help' for the flags.\n";
}

}  // namespace

int BrokerCommand(const std::vector<std::string>& args, const Env& env) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    PrintUsage(args.empty() ? std::cerr : std::cout);
    return args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "publish" || args[0] == "pub") {
    return RunClientCommand(
        {"micro broker publish TOPIC MESSAGE [flags]",
         "Publishes MESSAGE (the body, as given) to TOPIC, a concrete topic without wildcards.\n"
         "Every subscriber of a matching topic gets it, and one member of each matching queue\n"
         "group. Having no subscriber is not an error: the message is gone.",
         {{"header", 'H', "KEY=VALUE", "a header entry (repeatable)", true}},
         2},
        rest, env, &Publish);
  }
  if (args[0] == "subscribe" || args[0] == "sub") {
    return RunClientCommand(
        {"micro broker subscribe TOPIC [flags]",
         "Prints every message published to TOPIC from now on, one per line, until Ctrl-C:\n"
         "the topic, the header as [KEY=VALUE ...] when it has one, and the body; with -o json\n"
         "one JSON object per line. A message with the header micro-dropped=N follows N that\n"
         "this subscriber lost because it read too slowly.",
         {{"queue", 'q', "NAME", "join queue group NAME: its members share the messages"}},
         1},
        rest, env, &Subscribe);
  }
  std::cerr << "error: unknown broker command '" << args[0]
            << "'; run 'micro broker --help' for the list\n";
  return 2;
}

}  // namespace micro::cli
