#include "runtime/units.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <csignal>
#include <optional>
#include <utility>

namespace micro::runtime {
namespace {

using std::chrono::milliseconds;

struct SignalEntry {
  const char* name;  // without "SIG"
  int number;
};

constexpr SignalEntry kSignals[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"ILL", SIGILL},
    {"TRAP", SIGTRAP},     {"ABRT", SIGABRT}, {"BUS", SIGBUS},     {"FPE", SIGFPE},
    {"KILL", SIGKILL},     {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},   {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE},     {"ALRM", SIGALRM}, {"TERM", SIGTERM},   {"CHLD", SIGCHLD},
    {"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN},
    {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},
    {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
    {"SYS", SIGSYS},
};
constexpr int kMaxSignalNumber = 64;

using Unit = std::pair<const char*, double>;  // suffix, factor

constexpr Unit kDurationUnits[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}};
constexpr Unit kSizeUnits[] = {
    {"", 1},      {"b", 1},         {"kb", 1e3},      {"mb", 1e6},      {"gb", 1e9},
    {"tb", 1e12}, {"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1099511627776.0}};

constexpr double kMaxDurationMs = 100.0 * 365 * 86'400'000;
constexpr double kMaxSizeBytes = 1125899906842624.0;  // 1 PiB

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Reads a non-negative decimal number ("12", "1.5") from the front of `s`, consuming it.
std::optional<double> TakeNumber(std::string_view& s) {
  size_t n = 0;
  while (n < s.size() && (std::isdigit(static_cast<unsigned char>(s[n])) || s[n] == '.')) ++n;
  if (n == 0 || !std::isdigit(static_cast<unsigned char>(s[0]))) return std::nullopt;
  double value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + n, value);
  if (ec != std::errc() || end != s.data() + n) return std::nullopt;
  s.remove_prefix(n);
  return value;
}

std::string_view TakeLetters(std::string_view& s) {
  size_t n = 0;
  while (n < s.size() && std::isalpha(static_cast<unsigned char>(s[n]))) ++n;
  std::string_view letters = s.substr(0, n);
  s.remove_prefix(n);
  return letters;
}

template <size_t N>
std::optional<double> Factor(const Unit (&units)[N], std::string_view suffix) {
  const std::string lower = Lower(suffix);
  for (const auto& [unit_suffix, factor] : units) {
    if (lower == unit_suffix) return factor;
  }
  return std::nullopt;
}

}  // namespace

std::string SignalName(int signal) {
  for (const SignalEntry& entry : kSignals) {
    if (entry.number == signal) return std::string("SIG") + entry.name;
  }
  return fmt::format("SIG{}", signal);
}

Result<int> ParseSignal(std::string_view text) {
  std::string upper(Trim(text));
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string_view name = upper;
  if (name.rfind("SIG", 0) == 0) name.remove_prefix(3);
  for (const SignalEntry& entry : kSignals) {
    if (name == entry.name) return entry.number;
  }
  int number = 0;
  if (ParseWhole(name, number) && number >= 1 && number <= kMaxSignalNumber) return number;
  return absl::InvalidArgumentError(
      fmt::format("'{}' is not a signal; use a name such as SIGTERM, SIGINT or SIGHUP", text));
}

Result<milliseconds> ParseDuration(std::string_view text) {
  std::string_view rest = Trim(text);
  const auto bad = [&] {
    return absl::InvalidArgumentError(fmt::format(
        "'{}' is not a duration; use e.g. 500ms, 1.5s, 2m, 1h, 1m30s, or a number of seconds",
        text));
  };
  if (rest.empty()) return bad();
  if (rest[0] == '-') {
    return absl::InvalidArgumentError(
        fmt::format("'{}' is negative; a duration is 0 or more", text));
  }
  double total = 0;
  bool bare = true;
  while (!rest.empty()) {
    auto number = TakeNumber(rest);
    if (!number) return bad();
    const std::string_view suffix = TakeLetters(rest);
    if (suffix.empty() && bare && rest.empty()) {
      total = *number * 1000;  // a bare number: seconds
      break;
    }
    bare = false;
    auto factor = Factor(kDurationUnits, suffix);
    if (!factor || suffix.empty()) return bad();
    total += *number * *factor;
  }
  if (!(total <= kMaxDurationMs)) {
    return absl::InvalidArgumentError(fmt::format("duration '{}' is too long", text));
  }
  return milliseconds(std::llround(total));
}

Result<int64_t> ParseSize(std::string_view text) {
  std::string_view rest = Trim(text);
  const auto bad = [&] {
    return absl::InvalidArgumentError(
        fmt::format("'{}' is not a size; use e.g. 512 (bytes), 64KiB, 256MiB, 1GiB or 10MB", text));
  };
  if (!rest.empty() && rest[0] == '-') {
    return absl::InvalidArgumentError(fmt::format("'{}' is negative; a size is 0 or more", text));
  }
  auto number = TakeNumber(rest);
  if (!number) return bad();
  rest = Trim(rest);
  auto factor = Factor(kSizeUnits, rest);
  if (!factor) return bad();
  const double bytes = *number * *factor;
  if (!(bytes <= kMaxSizeBytes)) {
    return absl::InvalidArgumentError(fmt::format("size '{}' is too large", text));
  }
  return static_cast<int64_t>(bytes);
}

std::string FormatDuration(milliseconds duration) {
  int64_t ms = duration.count();
  if (ms < 0) return "-" + FormatDuration(milliseconds(-ms));
  if (ms < 1000) return fmt::format("{}ms", ms);
  std::string out;
  for (const auto& [unit, size] : {std::pair{"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}}) {
    if (ms >= size) out += fmt::format("{}{}", ms / size, unit);
    ms %= size;
  }
  if (ms == 0) return out;
  if (ms % 1000 == 0) return out + fmt::format("{}s", ms / 1000);
  std::string fraction = fmt::format("{:03}", ms % 1000);
  while (fraction.back() == '0') fraction.pop_back();
  return out + fmt::format("{}.{}s", ms / 1000, fraction);
}

Result<double> ParseNumber(std::string_view text) {
  std::string_view rest = Trim(text);
  auto value = TakeNumber(rest);
  if (!value || !rest.empty())
    return absl::InvalidArgumentError(fmt::format("must be a number, not '{}'", text));
  return *value;
}

}  // namespace micro::runtime
