// `micro completion bash|zsh`: a completion script that asks `micro` itself, through the
// --help of each command, for the commands, subcommands and flags, so it never goes stale.
#include <iostream>

#include "cli/commands.h"

namespace micro::cli {
namespace {

// Words after "Commands:" are commands; "-x, --flag" and "    --flag" lines are flags.
constexpr char kBash[] = R"SH(# bash completion for micro: source <(micro completion bash)
_micro_help_words() {
  "$@" --help 2>/dev/null | awk '
    /^Commands:/ { cmds = 1; next }
    /^$/ { cmds = 0 }
    cmds && /^  [a-z]/ { print $1 }
    /^ +(-[a-zA-Z], )?--[a-z]/ { for (i = 1; i <= NF; i++) if ($i ~ /^--[a-z]/) { sub(/,$/, "", $i); print $i } }'
}
_micro() {
  local cur=${COMP_WORDS[COMP_CWORD]} path=(micro) i word
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    [[ $word == -* ]] && continue
    # a subcommand only if the command so far lists it
    if _micro_help_words "${path[@]}" | grep -qx -- "$word"; then path+=("$word"); else break; fi
  done
  COMPREPLY=($(compgen -W "$(_micro_help_words "${path[@]}")" -- "$cur"))
}
complete -o default -F _micro micro
)SH";

constexpr char kZshPrefix[] = R"SH(# zsh completion for micro: source <(micro completion zsh)
autoload -U +X bashcompinit && bashcompinit
)SH";

}  // namespace

int CompletionCommand(const std::vector<std::string>& args, const Env&) {
  if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
    std::cout << "Usage: micro completion bash|zsh\n\n"
                 "Prints a shell completion script for commands, subcommands and flags:\n"
                 "  source <(micro completion bash)     # in ~/.bashrc\n"
                 "  source <(micro completion zsh)      # in ~/.zshrc\n";
    return 0;
  }
  if (args.size() != 1 || (args[0] != "bash" && args[0] != "zsh")) {
    std::cerr << "error: give the shell: bash or zsh; see 'micro completion --help'\n";
    return 2;
  }
  if (args[0] == "zsh") std::cout << kZshPrefix;
  std::cout << kBash;
  return 0;
}

}  // namespace micro::cli
