#include "core/flags.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <iostream>

namespace micro {
namespace {

const FlagSpec* FindLong(const std::vector<FlagSpec>& specs, const std::string& name) {
  for (const FlagSpec& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

const FlagSpec* FindShort(const std::vector<FlagSpec>& specs, char name) {
  for (const FlagSpec& spec : specs) {
    if (spec.short_name != 0 && spec.short_name == name) return &spec;
  }
  return nullptr;
}

// Edits between a and b: insertions, deletions, substitutions and swaps of two neighbours
// (the optimal string alignment distance: "raed" is one edit from "read").
size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min(
          {d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// " (did you mean --name?)" for an unknown long flag close to a known one.
std::string FlagHint(const std::string& arg, const std::vector<FlagSpec>& specs) {
  if (arg.rfind("--", 0) != 0) return "";
  std::vector<std::string> names;
  for (const FlagSpec& spec : specs) names.push_back(spec.name);
  names.push_back("help");
  std::string name =
      arg.substr(2, arg.find('=') == std::string::npos ? std::string::npos : arg.find('=') - 2);
  const std::string match = ClosestMatch(name, names);
  return match.empty() ? "" : fmt::format(" (did you mean --{}?)", match);
}

}  // namespace

std::string ClosestMatch(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::string::npos;
  std::string prefixed;
  int prefixes = 0;
  for (const std::string& c : candidates) {
    const size_t d = EditDistance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
    if (!word.empty() && c.rfind(word, 0) == 0) {
      prefixed = c;
      ++prefixes;
    }
  }
  if (best_distance != std::string::npos && best_distance > 0 && best_distance <= 2 &&
      best_distance * 3 <= std::max<size_t>(word.size(), 3)) {
    return best;
  }
  return prefixes == 1 ? prefixed : "";
}

Result<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                             const std::vector<FlagSpec>& specs) {
  ParsedArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      parsed.rest.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      break;
    }
    if (arg == "-h" || arg == "--help") {
      parsed.help = true;
      continue;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      parsed.positionals.push_back(arg);
      continue;
    }
    const FlagSpec* spec = nullptr;
    std::string value;
    bool has_inline_value = false;
    if (arg[1] == '-') {
      std::string name = arg.substr(2);
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name.resize(eq);
        has_inline_value = true;
      }
      spec = FindLong(specs, name);
    } else if (arg.size() == 2) {
      spec = FindShort(specs, arg[1]);
    }
    if (spec == nullptr) {
      return absl::InvalidArgumentError(
          fmt::format("unknown flag {}{}", arg, FlagHint(arg, specs)));
    }
    if (spec->value_name.empty()) {
      if (has_inline_value) {
        return absl::InvalidArgumentError(fmt::format("flag --{} takes no value", spec->name));
      }
      parsed.values[spec->name] = "true";
      continue;
    }
    if (!has_inline_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(
            fmt::format("flag --{} needs a value ({})", spec->name, spec->value_name));
      }
      value = args[++i];
    }
    if (spec->repeated) parsed.lists[spec->name].push_back(value);
    parsed.values[spec->name] = value;
  }
  return parsed;
}

std::variant<ParsedArgs, int> ParseCommandLine(const CommandSpec& spec,
                                               const std::vector<std::string>& args) {
  // "micro store read KEY [flags]" -> "micro store read": the words before the first argument.
  std::string command;
  for (size_t start = 0; start < spec.usage.size();) {
    size_t end = spec.usage.find(' ', start);
    if (end == std::string::npos) end = spec.usage.size();
    const std::string word = spec.usage.substr(start, end - start);
    if (word.empty() || !std::islower(static_cast<unsigned char>(word[0]))) break;
    command += (command.empty() ? "" : " ") + word;
    start = end + 1;
  }
  auto parsed = ParseArgs(args, spec.flags);
  if (!parsed.ok()) {
    std::cerr << "error: " << parsed.status().message() << "; see '" << command << " --help'\n";
    return 2;
  }
  if (parsed->help) {
    std::cout << FormatHelp(spec.usage, spec.description, spec.flags);
    return 0;
  }
  if (parsed->positionals.size() > spec.max_positionals) {
    std::cerr << "error: unexpected argument '" << parsed->positionals[spec.max_positionals]
              << "'; see '" << command << " --help'\n";
    return 2;
  }
  return std::move(*parsed);
}

std::string FormatHelp(const std::string& usage, const std::string& description,
                       const std::vector<FlagSpec>& specs) {
  std::string out = fmt::format("Usage: {}\n\n{}\n", usage, description);
  if (specs.empty()) return out;
  out += "\nFlags:\n";
  for (const FlagSpec& spec : specs) {
    std::string left = spec.short_name ? fmt::format("-{}, --{}", spec.short_name, spec.name)
                                       : fmt::format("    --{}", spec.name);
    if (!spec.value_name.empty()) left += " " + spec.value_name;
    if (spec.repeated) left += " ...";
    out += fmt::format("  {:<32} {}\n", left, spec.help);
  }
  out += fmt::format("  {:<32} {}\n", "-h, --help", "show this help");
  return out;
}

}  // namespace micro
