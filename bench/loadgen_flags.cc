#include "bench/loadgen_flags.h"

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>

namespace micro::bench {
namespace {

constexpr int kMaxConcurrency = 1024;

bool ParseInt64(const std::string& text, int64_t min, int64_t max, int64_t* out) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || value < min || value > max) return false;
  *out = value;
  return true;
}

bool ParseInt(const std::string& text, int min, int max, int* out) {
  int64_t value = 0;
  if (!ParseInt64(text, min, max, &value)) return false;
  *out = static_cast<int>(value);
  return true;
}

bool ParseSeconds(const std::string& text, double* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text.c_str(), &end);
  if (errno != 0 || *end != '\0' || !(value >= 0) || value > 86400) return false;
  *out = value;
  return true;
}

bool ParseMetadata(const std::string& text, LoadgenFlags* flags) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  flags->metadata.emplace_back(text.substr(0, eq), text.substr(eq + 1));
  return true;
}

using Setter = std::function<bool(const std::string&, LoadgenFlags*)>;

// Flags that take a value; each setter returns false when the value is malformed.
const std::map<std::string, Setter>& ValueFlags() {
  static const auto* flags = new std::map<std::string, Setter>{
      {"target", [](const std::string& v, LoadgenFlags* f) { return !(f->target = v).empty(); }},
      {"method", [](const std::string& v, LoadgenFlags* f) { return !(f->method = v).empty(); }},
      {"request-hex",
       [](const std::string& v, LoadgenFlags* f) {
         f->request_hex = v;
         return f->has_request_hex = true;
       }},
      {"request-text",
       [](const std::string& v, LoadgenFlags* f) {
         f->request_text = v;
         return true;
       }},
      {"request-type",
       [](const std::string& v, LoadgenFlags* f) { return !(f->request_type = v).empty(); }},
      {"metadata", ParseMetadata},
      {"concurrency",
       [](const std::string& v, LoadgenFlags* f) {
         return ParseInt(v, 1, kMaxConcurrency, &f->concurrency);
       }},
      {"calls-per-channel",
       [](const std::string& v, LoadgenFlags* f) {
         return ParseInt(v, 1, kMaxConcurrency, &f->calls_per_channel);
       }},
      {"duration",
       [](const std::string& v, LoadgenFlags* f) { return ParseSeconds(v, &f->duration_s); }},
      {"warmup",
       [](const std::string& v, LoadgenFlags* f) { return ParseSeconds(v, &f->warmup_s); }},
      {"max-calls",
       [](const std::string& v, LoadgenFlags* f) {
         return ParseInt64(v, 1, int64_t{1} << 40, &f->max_calls);
       }},
      {"number-modulo",
       [](const std::string& v, LoadgenFlags* f) {
         return ParseInt64(v, 1, int64_t{1} << 40, &f->number_modulo);
       }},
      {"deadline-ms", [](const std::string& v,
                         LoadgenFlags* f) { return ParseInt(v, 1, 3'600'000, &f->deadline_ms); }},
      {"address-file",
       [](const std::string& v, LoadgenFlags* f) { return !(f->address_file = v).empty(); }},
      {"since-ns",
       [](const std::string& v, LoadgenFlags* f) {
         return ParseInt64(v, 0, std::numeric_limits<int64_t>::max(), &f->since_ns);
       }},
      {"timeout-ms", [](const std::string& v,
                        LoadgenFlags* f) { return ParseInt(v, 1, 3'600'000, &f->timeout_ms); }},
  };
  return *flags;
}

bool ParseMode(const std::string& word, Mode* mode) {
  static const auto* modes = new std::map<std::string, Mode>{
      {"run", Mode::kRun}, {"call", Mode::kCall}, {"wait-ready", Mode::kWaitReady}};
  const auto it = modes->find(word);
  if (it == modes->end()) return false;
  *mode = it->second;
  return true;
}

// The cross-flag rules of each mode, checked once every flag is read.
bool Validate(const LoadgenFlags& flags, std::string* error) {
  const bool has_text = !flags.request_text.empty() || !flags.request_type.empty();
  if (flags.has_request_hex && has_text) {
    *error = "give --request-hex or --request-text/--request-type, not both";
  } else if (!flags.request_text.empty() && flags.request_type.empty()) {
    *error = "--request-text needs --request-type (a full message name)";
  } else if (flags.mode == Mode::kWaitReady) {
    if (flags.target.empty() == flags.address_file.empty()) {
      *error = "wait-ready needs exactly one of --target and --address-file";
    } else if (!flags.method.empty() && !flags.has_request_hex && !has_text) {
      *error = "wait-ready --method needs a request (--request-hex or --request-text)";
    }
  } else if (flags.target.empty() || flags.method.empty()) {
    *error = "--target and --method are required";
  } else if (!flags.has_request_hex && !has_text) {
    *error =
        "a request is required: --request-hex HEX (may be '') or --request-text/--request-type";
  }
  return error->empty();
}

}  // namespace

std::string LoadgenUsage() {
  return R"(usage: micro-loadgen [run|call|wait-ready] --flag value ...

request (run, call; wait-ready with --method):
  --target HOST:PORT          server to call
  --method /pkg.Service/M     full method name
  --request-hex HEX           serialized request ('' is the empty message), or
  --request-text TEXTPROTO --request-type full.MessageName
                              {n} in the text: the call's number, 12 zero-padded digits
                              (0, 1, ... per run; 0 for call and wait-ready), e.g. distinct keys;
                              in hex, the bytes of "{nnnnnnnnnn}" are numbered the same way
  --metadata key=value        repeatable
  --deadline-ms N             per call (default 5000)
run:
  --concurrency N             calls in flight (default 1, at most 1024)
  --calls-per-channel N       in-flight calls sharing one connection (default 16)
  --duration S                measured seconds (default 5)
  --warmup S                  seconds before measuring, excluded from stats (default 1)
  --max-calls N               hard bound on calls issued, warmup included (default 5000000)
  --number-modulo N           {n} counts 0..N-1 and wraps (e.g. to read N seeded keys)
  --json                      print a JSON object instead of a line
call:
  --print-hex                 also print the response bytes in hex
wait-ready:
  --target HOST:PORT | --address-file server.json (polled for its "grpc_address")
  --since-ns N                CLOCK_REALTIME ns to measure from (e.g. date +%s%N); default now
  --timeout-ms N              give up after this long (default 10000)
  without --method: ready when grpc.health.v1.Health/Check says SERVING;
  with --method and a request: ready when that call returns OK.
)";
}

bool ParseLoadgenFlags(int argc, char** argv, LoadgenFlags* flags, std::string* error) {
  error->clear();
  int i = 1;
  if (i < argc && argv[i][0] != '-') {
    if (!ParseMode(argv[i], &flags->mode)) {
      *error = std::string("unknown mode '") + argv[i] + "'; modes: run, call, wait-ready";
      return false;
    }
    ++i;
  }
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      flags->help = true;
      return true;
    }
    if (arg == "--json") {
      flags->json = true;
      continue;
    }
    if (arg == "--print-hex") {
      flags->print_hex = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      *error = "unexpected argument '" + arg + "'";
      return false;
    }
    std::string name = arg.substr(2);
    std::string value;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      *error = "--" + name + " needs a value";
      return false;
    }
    const auto it = ValueFlags().find(name);
    if (it == ValueFlags().end()) {
      *error = "unknown flag --" + name + " (see --help)";
      return false;
    }
    if (!it->second(value, flags)) {
      *error = "bad value for --" + name + ": '" + value + "'";
      return false;
    }
  }
  return Validate(*flags, error);
}

}  // namespace micro::bench
