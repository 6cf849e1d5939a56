// The unit parsers: durations, sizes, signals and plain numbers.
#include "runtime/units.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <csignal>

namespace micro::runtime {
namespace {

using std::chrono::milliseconds;

TEST_CASE("ParseDuration reads the documented forms", "[units]") {
  const std::pair<const char*, int64_t> good[] = {
      {"500ms", 500},  {"1s", 1000},     {"1.5s", 1500},   {"2m", 120000},
      {"1h", 3600000}, {"1d", 86400000}, {"1m30s", 90000}, {"10", 10000},
      {"0.25", 250},   {"0", 0},         {" 3s ", 3000},   {"1h30m", 5400000},
  };
  for (const auto& [text, ms] : good) {
    INFO(text);
    auto parsed = ParseDuration(text);
    REQUIRE(parsed.ok());
    CHECK(parsed->count() == ms);
  }
  for (const char* text : {"", "-1s", "1x", "s", "1.2.3s", "1s2", "fast", "1e3", "9999999d"}) {
    INFO(text);
    CHECK(ParseDuration(text).status().code() == absl::StatusCode::kInvalidArgument);
  }
  for (int64_t ms : {0, 250, 1000, 1500, 90000, 3600000, 5400000, 86400000 + 1}) {
    CHECK(ParseDuration(FormatDuration(milliseconds(ms)))->count() == ms);
  }
  CHECK(FormatDuration(milliseconds(90500)) == "1m30.5s");
}

TEST_CASE("ParseSize reads bytes, decimal and binary units", "[units]") {
  const std::pair<const char*, int64_t> good[] = {
      {"512", 512},        {"512B", 512},        {"64KiB", 65536},
      {"64MiB", 67108864}, {"1GiB", 1073741824}, {"10MB", 10000000},
      {"2kb", 2000},       {"1.5KiB", 1536},     {"64 MiB", 67108864},
  };
  for (const auto& [text, bytes] : good) {
    INFO(text);
    auto parsed = ParseSize(text);
    REQUIRE(parsed.ok());
    CHECK(*parsed == bytes);
  }
  for (const char* text : {"", "-1", "1XB", "MiB", "lots", "2PiB", "99999TiB"}) {
    INFO(text);
    CHECK(ParseSize(text).status().code() == absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("ParseSignal reads names with or without SIG, and numbers", "[units]") {
  const std::pair<const char*, int> good[] = {
      {"SIGTERM", SIGTERM}, {"TERM", SIGTERM}, {"sigint", SIGINT},   {"HUP", SIGHUP},
      {"SIGUSR2", SIGUSR2}, {"15", 15},        {"SIGKILL", SIGKILL},
  };
  for (const auto& [text, number] : good) {
    INFO(text);
    auto parsed = ParseSignal(text);
    REQUIRE(parsed.ok());
    CHECK(*parsed == number);
  }
  for (const char* text : {"", "SIG", "TERMINATE", "0", "65", "-9"}) {
    INFO(text);
    CHECK(ParseSignal(text).status().code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(SignalName(SIGKILL) == "SIGKILL");
  CHECK(SignalName(SIGQUIT) == "SIGQUIT");
  CHECK(SignalName(40) == "SIG40");
  CHECK(*ParseSignal(SignalName(40)) == 40);
}

TEST_CASE("unit errors say what was wrong and what to write instead", "[units]") {
  auto message = [](const Status& s) { return std::string(s.message()); };
  CHECK(message(ParseDuration("fast").status()) ==
        "'fast' is not a duration; use e.g. 500ms, 1.5s, 2m, 1h, 1m30s, or a number of seconds");
  CHECK(message(ParseDuration("-1s").status()) == "'-1s' is negative; a duration is 0 or more");
  CHECK(message(ParseDuration("9999999d").status()) == "duration '9999999d' is too long");
  CHECK(message(ParseSize("lots").status()) ==
        "'lots' is not a size; use e.g. 512 (bytes), 64KiB, 256MiB, 1GiB or 10MB");
  CHECK(message(ParseSize("-1").status()) == "'-1' is negative; a size is 0 or more");
  CHECK(message(ParseSize("2PiB").status()) ==
        "'2PiB' is not a size; use e.g. 512 (bytes), "
        "64KiB, 256MiB, 1GiB or 10MB");
  CHECK(message(ParseSize("99999TiB").status()) == "size '99999TiB' is too large");
  CHECK(message(ParseSignal("TERMINATE").status()) ==
        "'TERMINATE' is not a signal; use a name such as SIGTERM, SIGINT or SIGHUP");
}

TEST_CASE("ParseNumber reads non-negative decimals and names bad text", "[units]") {
  CHECK(*ParseNumber(" 1.5 ") == 1.5);
  CHECK(*ParseNumber("12") == 12);
  for (const char* text : {"", "-1", "1.5x", "two", ".5"}) {
    INFO(text);
    auto parsed = ParseNumber(text);
    REQUIRE_FALSE(parsed.ok());
    CHECK(std::string(parsed.status().message()) ==
          fmt::format("must be a number, not '{}'", text));
  }
}

TEST_CASE("ParseWhole takes only a whole number that fits the type", "[units]") {
  int n = 0;
  CHECK(ParseWhole("65535", n));
  CHECK(n == 65535);
  CHECK_FALSE(ParseWhole("", n));
  CHECK_FALSE(ParseWhole("12a", n));
  CHECK_FALSE(ParseWhole("99999999999", n));
  uint8_t small = 0;
  CHECK_FALSE(ParseWhole("256", small));
}

}  // namespace
}  // namespace micro::runtime
