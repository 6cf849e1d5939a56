#include "tests/support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace micro::testing {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

pid_t Spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            const std::string& out_path, const std::string& err_path) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    if (env.count(entry.substr(0, entry.find('='))) == 0) env_strings.push_back(entry);
  }
  for (const auto& [key, value] : env) env_strings.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& s : args) argp.push_back(s.data());
  argp.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execve(argp[0], argp.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace

ProgramResult RunProgram(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env,
                         std::chrono::milliseconds timeout) {
  ChildProcess child(argv, env);
  ProgramResult result;
  result.exit_code = child.Wait(timeout);
  if (result.exit_code == -2) result.exit_code = child.Stop(SIGKILL);
  result.out = child.Stdout();
  result.err = child.Stderr();
  return result;
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv,
                           const std::map<std::string, std::string>& env) {
  pid_ = Spawn(argv, env, output_dir_.path() + "/stdout", output_dir_.path() + "/stderr");
}

ChildProcess::~ChildProcess() {
  if (exit_code_ == -2) Stop(SIGKILL);
}

bool ChildProcess::running() { return Wait(std::chrono::milliseconds(0)) == -2; }

int ChildProcess::Reap(int wait_status) {
  exit_code_ = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1;
  return exit_code_;
}

int ChildProcess::Wait(std::chrono::milliseconds timeout) {
  if (exit_code_ != -2) return exit_code_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) return Reap(status);
    if (std::chrono::steady_clock::now() >= deadline) return -2;
    ::usleep(5'000);
  }
}

int ChildProcess::Stop(int signal, std::chrono::milliseconds timeout) {
  if (exit_code_ != -2) return exit_code_;
  ::kill(pid_, signal);
  int code = Wait(timeout);
  if (code != -2) return code;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  Reap(status);
  exit_code_ = -1;
  return -1;
}

std::string ChildProcess::Stdout() const { return ReadAll(output_dir_.path() + "/stdout"); }
std::string ChildProcess::Stderr() const { return ReadAll(output_dir_.path() + "/stderr"); }

std::set<int> LivePidsWithEnv(const std::string& marker) {
  std::set<int> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream env(entry.path() / "environ", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
    if (text.find(marker) == std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string s((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const size_t paren = s.rfind(')');
    if (paren != std::string::npos && paren + 2 < s.size() && s[paren + 2] == 'Z') continue;
    out.insert(std::stoi(name));
  }
  return out;
}

std::map<std::string, std::string> RssMeasuredEnv() {
#if defined(__SANITIZE_ADDRESS__)
  const char* inherited = std::getenv("ASAN_OPTIONS");
  std::string options = inherited != nullptr ? inherited : "";
  if (!options.empty()) options += ':';
  return {{"ASAN_OPTIONS", options + "quarantine_size_mb=8:thread_local_quarantine_size_kb=256"}};
#else
  return {};
#endif
}

int64_t ResidentBytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // in kB
  }
  return -1;
}

}  // namespace micro::testing
