#pragma once

#include <map>
#include <string>
#include <variant>
#include <vector>

#include "core/status.h"

namespace micro {

// Why a parser of our own and not Debian's CLI11 2.1 (measured 2026-12-07 on this machine): a
// translation unit using CLI11 took 13.9 s to compile against 5.4 s for this file (one per
// command file would add minutes to a 2-core build), and CLI11 2.1 has no suggestion for a
// mistyped command or flag ("The following argument was not expected: stor"), which this
// parser gives (ClosestMatch). Help is generated here from each CommandSpec, flags may come
// before the command (cli/main.cc), and the tests pin the messages.

// One command-line flag: `--name VALUE`, `--name=VALUE`, or `-s VALUE`; a switch takes no value.
struct FlagSpec {
  std::string name;        // without the leading "--"
  char short_name = 0;     // 0: none
  std::string value_name;  // empty: a switch
  std::string help;
  bool repeated = false;  // may be given many times; every value is kept, in order, in `lists`
};

struct ParsedArgs {
  std::vector<std::string> positionals;
  std::map<std::string, std::string> values;  // switches map to "true"; repeated flags: the last
  std::map<std::string, std::vector<std::string>> lists;  // every value of a repeated flag
  std::vector<std::string> rest;                          // everything after "--"
  bool help = false;                                      // -h or --help was given

  bool Has(const std::string& name) const { return values.count(name) != 0; }
  std::string Get(const std::string& name, const std::string& fallback = "") const {
    auto it = values.find(name);
    return it == values.end() ? fallback : it->second;
  }
  // Every value of the repeated flag `name`, in command-line order; empty when absent.
  std::vector<std::string> All(const std::string& name) const {
    auto it = lists.find(name);
    return it == lists.end() ? std::vector<std::string>{} : it->second;
  }
};

// Parses `args` (without the program and command names) against `specs`. An unknown flag or a
// missing value is INVALID_ARGUMENT naming the flag. A flag given twice keeps its last value,
// unless its spec says `repeated`: then `lists` has every value too.
[[nodiscard]] Result<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                           const std::vector<FlagSpec>& specs);

// What a command accepts, for parsing and for --help.
struct CommandSpec {
  std::string usage;  // "micro services [NAME] [flags]"
  std::string description;
  std::vector<FlagSpec> flags;
  size_t max_positionals = 0;
};

// Parses a command's arguments the same way for every command. Returns the parsed arguments, or
// the exit code the command should return: 0 after printing help to stdout, 2 after printing a
// usage error (`error: ...; see 'micro X --help'`) to stderr.
[[nodiscard]] std::variant<ParsedArgs, int> ParseCommandLine(const CommandSpec& spec,
                                                             const std::vector<std::string>& args);

// The candidate closest to `word` by edit distance, if it is close enough to be a typo (at
// most a third of the word's length, and at most 2 edits) or `word` is a prefix of exactly one
// candidate; empty otherwise. For "did you mean ...?".
std::string ClosestMatch(const std::string& word, const std::vector<std::string>& candidates);

// The help text of a command: usage line, description, then one line per flag.
std::string FormatHelp(const std::string& usage, const std::string& description,
                       const std::vector<FlagSpec>& specs);

}  // namespace micro
