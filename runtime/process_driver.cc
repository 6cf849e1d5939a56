#include "runtime/process_driver.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

namespace micro::runtime {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

// Leftovers get this long after SIGTERM before SIGKILL, polled every kLeftoverPoll.
constexpr int kLeftoverPolls = 100;
constexpr auto kLeftoverPoll = std::chrono::milliseconds(50);
// After an instance's main process exits, what is left of its cgroup gets SIGKILL; the exit is
// reported once the cgroup is empty, checked this often, at most this many times.
constexpr int kEmptyCgroupPolls = 1000;
// Output read from one pipe per wake-up; and what is still read after the process exited (the
// rest, if a grandchild keeps writing, is not waited for).
constexpr size_t kReadBudget = 64 << 10;
constexpr size_t kFinalReadBudget = 1 << 20;
constexpr auto kEmptyCgroupPoll = std::chrono::milliseconds(2);

// The program to exec: a path with a '/' as it is (relative ones resolve after the chdir), a
// bare name searched on PATH (the instance's own PATH, else the daemon's).
Result<std::string> ResolveCommand(const LaunchRequest& request) {
  const std::string& command = request.command;
  if (command.empty()) return absl::InvalidArgumentError("no command to run");
  if (command.find('/') != std::string::npos) return command;
  auto it = request.env.find("PATH");
  const char* daemon_path = ::getenv("PATH");
  std::string path = it != request.env.end() ? it->second : daemon_path ? daemon_path : "";
  if (path.empty()) path = "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t colon = path.find(':', start);
    if (colon == std::string::npos) colon = path.size();
    std::string dir = path.substr(start, colon - start);
    if (dir.empty()) dir = ".";
    if (!fs::path(dir).is_absolute() && !request.working_dir.empty()) {
      dir = request.working_dir + "/" + dir;
    }
    const std::string candidate = dir + "/" + command;
    if (::access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate)) return candidate;
    start = colon + 1;
  }
  return absl::NotFoundError(fmt::format("command '{}' not found on PATH ({})", command, path));
}

// Async-signal-safe decimal formatting for the forked child.
size_t FormatInt(long value, char* out) {
  char digits[24];
  size_t n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0);
  for (size_t i = 0; i < n; ++i) out[i] = digits[n - 1 - i];
  return n;
}

// What the vforked child needs, prepared by the parent: the child allocates nothing.
struct ChildSetup {
  const char* program = nullptr;
  char** argv = nullptr;
  char** envp = nullptr;
  const char* working_dir = nullptr;  // null: stay
  int stdin_fd = -1, stdout_fd = -1, stderr_fd = -1;
  int status_fd = -1;              // (stage, errno) goes here if anything fails before exec
  const int* procs_fds = nullptr;  // cgroup.procs files to join
  size_t procs_count = 0;
  bool rlimit_memory = false;
  rlim_t memory = 0;
};

// The child after vfork, up to exec: only async-signal-safe calls, and no writes to memory the
// daemon shares with it (errno aside, which the parent does not read after a vfork that worked).
[[noreturn]] void ExecChild(const ChildSetup& setup) {
  auto die = [&](int stage) {
    const int error[2] = {stage, errno};
    [[maybe_unused]] ssize_t n = ::write(setup.status_fd, error, sizeof error);
    ::_exit(127);
  };
  ::setpgid(0, 0);
  char digits[24];
  const size_t len = FormatInt(::getpid(), digits);
  for (size_t i = 0; i < setup.procs_count; ++i) {
    if (::write(setup.procs_fds[i], digits, len) < 0) die(1);
  }
  if (setup.stdin_fd >= 0) ::dup2(setup.stdin_fd, 0);
  ::dup2(setup.stdout_fd, 1);
  ::dup2(setup.stderr_fd, 2);
  if (setup.working_dir != nullptr && ::chdir(setup.working_dir) != 0) die(2);
  // Default dispositions first, then unblock: the daemon's handlers never run here.
  for (int s = 1; s < NSIG; ++s) ::signal(s, SIG_DFL);
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (setup.rlimit_memory) {
    const struct rlimit limit { setup.memory, setup.memory };
    ::setrlimit(RLIMIT_AS, &limit);
  }
  ::execve(setup.program, setup.argv, setup.envp);
  die(3);
  ::_exit(127);  // not reached: die exits
}

// Closes its descriptor unless released.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.Release()) {}
  Fd& operator=(Fd&& other) noexcept {
    Reset(other.Release());
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// The descriptors a start needs: stdout and stderr pipes (their read ends stay with the daemon
// while the instance runs), the exec status pipe and /dev/null for stdin (both gone once the
// child has exec'd).
struct ChildPipes {
  Fd out_read, out_write, err_read, err_write, status_read, status_write, dev_null;

  static Result<ChildPipes> Open() {
    ChildPipes p;
    for (auto [read, write] :
         {std::pair{&p.out_read, &p.out_write}, std::pair{&p.err_read, &p.err_write},
          std::pair{&p.status_read, &p.status_write}}) {
      int fds[2];
      if (::pipe2(fds, O_CLOEXEC) != 0) {
        return absl::ResourceExhaustedError(fmt::format("pipe: {}", std::strerror(errno)));
      }
      read->Reset(fds[0]);
      write->Reset(fds[1]);
    }
    p.dev_null.Reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    return p;
  }
  // After the vfork: the child has its copies (or is gone).
  void CloseChildEnds() {
    out_write.Reset();
    err_write.Reset();
    status_write.Reset();
    dev_null.Reset();
  }
};

// The cgroup.procs files of the instance's new cgroups, open for the child to join.
Result<std::vector<Fd>> JoinCgroups(Cgroups* cgroups, const LaunchRequest& request) {
  std::vector<Fd> fds;
  if (cgroups == nullptr) return fds;
  auto procs = cgroups->Create(request.instance_id, request.memory_bytes, request.max_processes);
  if (!procs.ok()) return procs.status();
  for (const std::string& path : *procs) {
    Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (fd.get() >= 0) fds.push_back(std::move(fd));
  }
  return fds;
}

// argv and envp as execve takes them, kept alive for the child (which allocates nothing).
class ExecArgs {
 public:
  ExecArgs(const LaunchRequest& request, const std::string& supervisor_id) {
    for (const auto& [key, value] : request.env) {
      if (key == "MICRO_SUPERVISOR_ID" || key == "MICRO_INSTANCE_ID") continue;
      env_strings_.push_back(key + "=" + value);
    }
    env_strings_.push_back("MICRO_SUPERVISOR_ID=" + supervisor_id);
    env_strings_.push_back("MICRO_INSTANCE_ID=" + request.instance_id);
    for (std::string& e : env_strings_) envp_.push_back(e.data());
    envp_.push_back(nullptr);
    argv_strings_.push_back(request.command);
    argv_strings_.insert(argv_strings_.end(), request.args.begin(), request.args.end());
    for (std::string& a : argv_strings_) argv_.push_back(a.data());
    argv_.push_back(nullptr);
  }

  ChildSetup Setup(const std::string& program, const LaunchRequest& request,
                   const ChildPipes& pipes, const std::vector<Fd>& procs) {
    procs_.clear();
    for (const Fd& fd : procs) procs_.push_back(fd.get());
    ChildSetup setup;
    setup.program = program.c_str();
    setup.argv = argv_.data();
    setup.envp = envp_.data();
    setup.working_dir = request.working_dir.empty() ? nullptr : request.working_dir.c_str();
    setup.stdin_fd = pipes.dev_null.get();
    setup.stdout_fd = pipes.out_write.get();
    setup.stderr_fd = pipes.err_write.get();
    setup.status_fd = pipes.status_write.get();
    setup.procs_fds = procs_.data();
    setup.procs_count = procs_.size();
    return setup;
  }

 private:
  std::vector<std::string> env_strings_, argv_strings_;
  std::vector<char*> envp_, argv_;
  std::vector<int> procs_;
};

// vfork: the child borrows the daemon's memory until it execs, so starting an instance costs
// no copy of the daemon's page tables (fork of the daemon was most of a restart's latency).
// Every signal is blocked around it so that no handler of the daemon's runs in the child.
Result<pid_t> Spawn(const ChildSetup& setup) {
  sigset_t all, old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const pid_t pid = ::vfork();
  if (pid == 0) ExecChild(setup);
  const int error = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return absl::ResourceExhaustedError(fmt::format("fork: {}", std::strerror(error)));
  return pid;
}

// Exec closes the status pipe; a failure writes (stage, errno) to it first. With vfork the
// child has exec'd or failed by the time this runs, so the read does not wait on the program.
Status AwaitExec(pid_t pid, ChildPipes& pipes, const LaunchRequest& request,
                 const std::string& program) {
  int error[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(pipes.status_read.get(), error, sizeof error);
  } while (n < 0 && errno == EINTR);
  pipes.status_read.Reset();
  if (n != static_cast<ssize_t>(sizeof error)) return absl::OkStatus();
  ::waitpid(pid, nullptr, 0);
  const char* what = error[0] == 1 ? "cannot join cgroup" : error[0] == 2 ? "chdir" : "exec";
  const std::string& target = error[0] == 2 ? request.working_dir : program;
  return absl::FailedPreconditionError(
      fmt::format("{} {}: {}", what, target, std::strerror(error[1])));
}

// Whether `pid` is gone or only a zombie.
bool Gone(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (stat.empty()) return true;
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

// Processes whose environment holds `marker` (NAME=VALUE), found through /proc.
std::vector<pid_t> PidsWithEnv(const std::string& marker) {
  std::vector<pid_t> out;
  std::error_code ec;
  const pid_t self = ::getpid();
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = std::stoi(name);
    if (pid == self) continue;
    std::ifstream in(entry.path() / "environ", std::ios::binary);
    std::string env((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (size_t start = 0; start < env.size();) {
      size_t end = env.find('\0', start);
      if (end == std::string::npos) end = env.size();
      if (env.compare(start, end - start, marker) == 0) {
        out.push_back(pid);
        break;
      }
      start = end + 1;
    }
  }
  return out;
}

}  // namespace

struct ProcessDriver::Child {
  std::string instance_id;
  pid_t pid = 0;
  LaunchCallbacks callbacks;
  std::unique_ptr<asio::posix::stream_descriptor> pipes[2];
  bool finished = false;
};

ProcessDriver::ProcessDriver(asio::io_context& io, std::string supervisor_id, bool use_cgroups)
    : io_(io),
      supervisor_id_(std::move(supervisor_id)),
      cgroups_(use_cgroups ? Cgroups::Detect(supervisor_id_) : nullptr),
      sigchld_(io, SIGCHLD),
      scanner_(1) {
  // Orphaned descendants of our instances come to us, not to init: they are reaped here and
  // nothing lingers as a zombie after a stop.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  sigchld_.async_wait([this](const boost::system::error_code& ec, int) {
    if (!ec) OnSigchld();
  });
}

ProcessDriver::~ProcessDriver() {
  boost::system::error_code ignored;
  sigchld_.cancel(ignored);
  scanner_.join();
}

std::string ProcessDriver::isolation() const {
  return cgroups_ ? cgroups_->description() : "process groups (no writable cgroups)";
}

void ProcessDriver::Start(const LaunchRequest& request, LaunchCallbacks callbacks) {
  auto fail = [&](Status error) {
    asio::post(io_, [cb = std::move(callbacks.on_started), error]() { cb(error); });
  };
  auto program = ResolveCommand(request);
  if (!program.ok()) return fail(program.status());
  auto procs = JoinCgroups(cgroups_.get(), request);
  if (!procs.ok()) return fail(procs.status());
  auto pipes = ChildPipes::Open();
  if (!pipes.ok()) {
    if (cgroups_) cgroups_->Remove(request.instance_id);
    return fail(pipes.status());
  }
  ExecArgs exec(request, supervisor_id_);
  ChildSetup setup = exec.Setup(*program, request, *pipes, *procs);
  setup.rlimit_memory = (!cgroups_ || !cgroups_->limits_memory()) && request.memory_bytes > 0;
  setup.memory = static_cast<rlim_t>(request.memory_bytes);

  auto pid = Spawn(setup);
  pipes->CloseChildEnds();
  for (Fd& fd : *procs) fd.Reset();
  if (!pid.ok()) return fail(pid.status());
  if (Status exec_error = AwaitExec(*pid, *pipes, request, *program); !exec_error.ok()) {
    if (cgroups_) cgroups_->Remove(request.instance_id);
    return fail(exec_error);
  }
  Adopt(request.instance_id, *pid, pipes->out_read.Release(), pipes->err_read.Release(),
        std::move(callbacks));
}

void ProcessDriver::Adopt(const std::string& instance_id, pid_t pid, int out_fd, int err_fd,
                          LaunchCallbacks callbacks) {
  auto child = std::make_shared<Child>();
  child->instance_id = instance_id;
  child->pid = pid;
  child->callbacks = std::move(callbacks);
  child->pipes[0] = std::make_unique<asio::posix::stream_descriptor>(io_, out_fd);
  child->pipes[1] = std::make_unique<asio::posix::stream_descriptor>(io_, err_fd);
  for (auto& pipe : child->pipes) pipe->non_blocking(true);
  by_pid_[pid] = child;
  by_instance_[instance_id] = child;
  WatchPipe(child, 0);
  WatchPipe(child, 1);
  asio::post(io_, [child] { child->callbacks.on_started(Launched{child->pid, ""}); });
}

void ProcessDriver::WatchPipe(const std::shared_ptr<Child>& child, int index) {
  child->pipes[index]->async_wait(asio::posix::stream_descriptor::wait_read,
                                  [this, child, index](const boost::system::error_code& ec) {
                                    if (!ec) DrainPipe(child, index);
                                  });
}

void ProcessDriver::DrainPipe(const std::shared_ptr<Child>& child, int index) {
  if (!child->pipes[index]) return;
  switch (ReadPipe(child, index, kReadBudget)) {
    case PipeState::kEmpty:
      return WatchPipe(child, index);
    case PipeState::kMore:
      // Let every other handler run first, then go on reading.
      return asio::post(io_, [this, child, index] { DrainPipe(child, index); });
    case PipeState::kClosed:
      child->pipes[index].reset();
      return;
  }
}

ProcessDriver::PipeState ProcessDriver::ReadPipe(const std::shared_ptr<Child>& child, int index,
                                                 size_t budget) {
  // One buffer for every pipe: reads happen on the io thread only, and a buffer per instance
  // would cost 1,000 supervised processes megabytes for nothing.
  static char buffer[64 << 10];
  auto& pipe = child->pipes[index];
  if (!pipe) return PipeState::kClosed;
  // At most `budget` bytes per call: a service that writes without pause must not keep the
  // event loop (and every other service, and the daemon's signals) waiting on its output.
  for (size_t read = 0; read < budget;) {
    const ssize_t n = ::read(pipe->native_handle(), buffer, std::min(sizeof buffer, budget - read));
    if (n > 0) {
      read += static_cast<size_t>(n);
      if (child->callbacks.on_output) {
        child->callbacks.on_output(index == 0 ? OutputStream::kStdout : OutputStream::kStderr,
                                   std::string_view(buffer, static_cast<size_t>(n)));
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? PipeState::kEmpty
                                                              : PipeState::kClosed;
  }
  return PipeState::kMore;
}

void ProcessDriver::OnSigchld() {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    auto it = by_pid_.find(pid);
    if (it == by_pid_.end()) continue;  // an orphaned grandchild, reaped as subreaper
    std::shared_ptr<Child> child = it->second;
    by_pid_.erase(it);
    Exit exit;
    if (WIFEXITED(status)) exit.code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) exit.signal = WTERMSIG(status);
    // The output written before the exit is in the pipes: deliver it, then let go of them, so a
    // grandchild that still holds them cannot delay the exit.
    for (int i = 0; i < 2; ++i) {
      ReadPipe(child, i, kFinalReadBudget);
      child->pipes[i].reset();
    }
    auto by_instance = by_instance_.find(child->instance_id);
    if (by_instance != by_instance_.end() && by_instance->second == child) {
      by_instance_.erase(by_instance);
    }
    // Whatever the instance left behind goes with it (systemd's control-group kill mode), and
    // the exit is reported only once it is gone: after a stop, nothing of it runs any more.
    if (cgroups_) {
      for (int p : cgroups_->Pids(child->instance_id)) ::kill(p, SIGKILL);
      AwaitEmptyCgroup(child, exit, kEmptyCgroupPolls);
    } else {
      // No cgroup: the process group, and whatever carries the instance's id in its
      // environment (a setsid grandchild, say). Finding those reads all of /proc, which is no
      // work for the event loop: the scanner does it, and the exit is reported after it.
      ::kill(-child->pid, SIGKILL);
      KillMarked("MICRO_INSTANCE_ID=" + child->instance_id, SIGKILL,
                 [child, exit](std::vector<pid_t>) { child->callbacks.on_exit(exit); });
    }
  }
  sigchld_.async_wait([this](const boost::system::error_code& ec, int) {
    if (!ec) OnSigchld();
  });
}

void ProcessDriver::AwaitEmptyCgroup(const std::shared_ptr<Child>& child, Exit exit, int polls) {
  if (cgroups_->Pids(child->instance_id).empty() || polls == 0) {
    cgroups_->Remove(child->instance_id);
    asio::post(io_, [child, exit] { child->callbacks.on_exit(exit); });
    return;
  }
  auto timer = std::make_shared<asio::steady_timer>(io_, kEmptyCgroupPoll);
  timer->async_wait([this, timer, child, exit, polls](const boost::system::error_code&) {
    for (int p : cgroups_->Pids(child->instance_id)) ::kill(p, SIGKILL);
    AwaitEmptyCgroup(child, exit, polls - 1);
  });
}

void ProcessDriver::Signal(const std::string& instance_id, int signal) {
  auto it = by_instance_.find(instance_id);
  if (it == by_instance_.end()) return;
  KillInstance(instance_id, it->second->pid, signal);
}

void ProcessDriver::KillInstance(const std::string& instance_id, pid_t pgid, int signal) {
  ::kill(-pgid, signal);
  if (cgroups_) {
    for (int pid : cgroups_->Pids(instance_id)) ::kill(pid, signal);
  } else if (signal == SIGKILL) {
    KillMarked("MICRO_INSTANCE_ID=" + instance_id, SIGKILL, [](std::vector<pid_t>) {});
  }
}

void ProcessDriver::KillMarked(std::string marker, int signal,
                               std::function<void(std::vector<pid_t>)> then) {
  asio::post(scanner_, [this, marker = std::move(marker), signal, then = std::move(then)]() {
    std::vector<pid_t> pids = PidsWithEnv(marker);
    if (signal != 0) {
      for (pid_t pid : pids) ::kill(pid, signal);
    }
    asio::post(io_, [then = std::move(then), pids = std::move(pids)]() { then(pids); });
  });
}

void ProcessDriver::RemoveLeftovers(std::function<void()> done) {
  KillMarked("MICRO_SUPERVISOR_ID=" + supervisor_id_, 0,
             [this, done = std::move(done)](std::vector<pid_t> pids) mutable {
               RemoveLeftovers(std::move(pids), std::move(done));
             });
}

void ProcessDriver::RemoveLeftovers(std::vector<pid_t> pids, std::function<void()> done) {
  if (cgroups_) {
    for (const std::string& instance : cgroups_->Instances()) {
      for (int pid : cgroups_->Pids(instance)) pids.push_back(pid);
    }
  }
  std::sort(pids.begin(), pids.end());
  pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
  for (pid_t pid : pids) ::kill(pid, SIGTERM);
  AwaitGone(std::move(pids), kLeftoverPolls, std::move(done));
}

// Reading /proc is file I/O: it runs on the scanner thread, the decision on the io thread.
void ProcessDriver::AwaitGone(std::vector<pid_t> pids, int polls, std::function<void()> done) {
  asio::post(scanner_, [this, pids = std::move(pids), polls, done = std::move(done)]() mutable {
    pids.erase(std::remove_if(pids.begin(), pids.end(), Gone), pids.end());
    asio::post(io_, [this, pids = std::move(pids), polls, done = std::move(done)]() mutable {
      AwaitGoneStep(std::move(pids), polls, std::move(done));
    });
  });
}

void ProcessDriver::AwaitGoneStep(std::vector<pid_t> pids, int polls, std::function<void()> done) {
  if (pids.empty() || polls == 0) {
    for (pid_t pid : pids) ::kill(pid, SIGKILL);
    if (cgroups_) {
      for (const std::string& instance : cgroups_->Instances()) cgroups_->Remove(instance);
    }
    asio::post(io_, std::move(done));
    return;
  }
  auto timer = std::make_shared<asio::steady_timer>(io_, kLeftoverPoll);
  timer->async_wait([this, timer, pids = std::move(pids), polls,
                     done = std::move(done)](const boost::system::error_code&) mutable {
    AwaitGone(std::move(pids), polls - 1, std::move(done));
  });
}

}  // namespace micro::runtime
