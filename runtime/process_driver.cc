#include "runtime/process_driver.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <tuple>
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
// Output read from one spool per wake-up; and what is still read after the process exited (the
// rest, if a grandchild keeps writing, is not waited for).
constexpr size_t kReadBudget = 64 << 10;
constexpr size_t kFinalReadBudget = 1 << 20;
// And lines: recording a line costs far more than reading its bytes, so a service writing short
// lines without pause (`yes`) must not make one step long either.
constexpr size_t kReadLineBudget = 2048;
constexpr size_t kFinalReadLineBudget = 32768;
// Output not yet read, in one spool, beyond which the oldest is skipped with a note: what an
// adopted instance wrote while no daemon ran, or a service writing faster than the daemon can
// record. It bounds the disk a spool takes while a daemon runs.
constexpr int64_t kMaxBacklogBytes = 8 << 20;
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

// The descriptors a start needs: the stdout and stderr spools (the child's ends, appending; the
// daemon's read and punch ends stay while the instance runs), the exec status pipe and
// /dev/null for stdin (gone once the child has exec'd).
struct ChildPipes {
  Fd out_read, out_write, err_read, err_write, status_read, status_write, dev_null;

  static Result<ChildPipes> Open(const std::string& out_path, const std::string& err_path) {
    ChildPipes p;
    for (auto [read, write, path] : {std::tuple{&p.out_read, &p.out_write, &out_path},
                                     std::tuple{&p.err_read, &p.err_write, &err_path}}) {
      write->Reset(
          ::open(path->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600));
      read->Reset(::open(path->c_str(), O_RDWR | O_CLOEXEC));
      if (write->get() < 0 || read->get() < 0) {
        return absl::ResourceExhaustedError(
            fmt::format("cannot open the output spool {}: {}", *path, std::strerror(errno)));
      }
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      return absl::ResourceExhaustedError(fmt::format("pipe: {}", std::strerror(errno)));
    }
    p.status_read.Reset(fds[0]);
    p.status_write.Reset(fds[1]);
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

// Processes whose environment holds `marker` (NAME=VALUE), found through /proc, each with the
// value of its MICRO_INSTANCE_ID.
std::vector<std::pair<pid_t, std::string>> PidsWithEnvAndInstance(const std::string& marker) {
  std::vector<std::pair<pid_t, std::string>> out;
  std::error_code ec;
  const pid_t self = ::getpid();
  const std::string instance_key = "MICRO_INSTANCE_ID=";
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = std::stoi(name);
    if (pid == self) continue;
    std::ifstream in(entry.path() / "environ", std::ios::binary);
    std::string env((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bool marked = false;
    std::string instance;
    for (size_t start = 0; start < env.size();) {
      size_t end = env.find('\0', start);
      if (end == std::string::npos) end = env.size();
      if (env.compare(start, end - start, marker) == 0) marked = true;
      if (env.compare(start, instance_key.size(), instance_key) == 0) {
        instance = env.substr(start + instance_key.size(), end - start - instance_key.size());
      }
      start = end + 1;
    }
    if (marked) out.emplace_back(pid, std::move(instance));
  }
  return out;
}

// Processes whose environment holds `marker` (NAME=VALUE), found through /proc.
std::vector<pid_t> PidsWithEnv(const std::string& marker) {
  std::vector<pid_t> out;
  for (const auto& [pid, instance] : PidsWithEnvAndInstance(marker)) out.push_back(pid);
  return out;
}

// The start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat), -1 if it is
// gone or a zombie: with the pid, it names one process for good (pids are reused).
int64_t StartTicks(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 3 && field == "Z") return -1;
    if (i == 22) return std::stoll(field);
  }
  return -1;
}

// An instance's record: `pid N`, `start TICKS`, then `label KEY=VALUE` lines. Written to a
// temporary file and renamed, so a reader never sees half of one; not synced: it only has to
// outlive the daemon, not the machine (a reboot ends the instances too).
void WriteRecord(const std::string& path, pid_t pid, int64_t ticks,
                 const std::map<std::string, std::string>& labels) {
  std::string text = fmt::format("pid {}\nstart {}\n", pid, ticks);
  for (const auto& [key, value] : labels) {
    if (key.find_first_of("=\n") == std::string::npos && value.find('\n') == std::string::npos) {
      text += fmt::format("label {}={}\n", key, value);
    }
  }
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
  }
  std::error_code ec;
  fs::rename(temporary, path, ec);
}

struct Record {
  pid_t pid = 0;
  int64_t ticks = -1;
  std::map<std::string, std::string> labels;
};

std::optional<Record> ReadRecord(const std::string& path) {
  std::ifstream in(path);
  Record record;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("pid ", 0) == 0) {
      record.pid = static_cast<pid_t>(std::atol(line.c_str() + 4));
    } else if (line.rfind("start ", 0) == 0) {
      record.ticks = std::atoll(line.c_str() + 6);
    } else if (line.rfind("label ", 0) == 0) {
      const size_t eq = line.find('=');
      if (eq != std::string::npos) record.labels[line.substr(6, eq - 6)] = line.substr(eq + 1);
    }
  }
  if (record.pid <= 0) return std::nullopt;
  return record;
}

// Where reading a spool resumes: past the holes punched behind what an earlier daemon read, and
// the NUL bytes of a partial block.
int64_t FirstUnread(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return 0;
  off_t at = ::lseek(fd, 0, SEEK_DATA);
  if (at < 0) return st.st_size;  // all hole, or empty
  char buffer[4096];
  while (at < st.st_size) {
    const ssize_t n = ::pread(fd, buffer, sizeof buffer, at);
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (buffer[i] != '\0') return at + i;
    }
    at += n;
  }
  return at;
}

}  // namespace

// One of an instance's two output spools, as the daemon reads it.
struct Spool {
  int fd = -1;          // read, and punched behind what was read
  int64_t offset = 0;   // read up to here
  int64_t punched = 0;  // holes up to here: after the last line break read
  int watch = -1;       // inotify watch, -1 if none (then polled)
  std::string path;
};

struct ProcessDriver::Child {
  std::string instance_id;
  pid_t pid = 0;
  bool adopted = false;  // started by an earlier daemon: not ours to wait for
  LaunchCallbacks callbacks;
  Spool spools[2];
  std::unique_ptr<asio::posix::stream_descriptor> pidfd;  // adopted: readable once it exits
  std::unique_ptr<asio::steady_timer> poll;               // spools without an inotify watch
  bool finished = false;
};

ProcessDriver::ProcessDriver(asio::io_context& io, std::string supervisor_id, bool use_cgroups,
                             std::string state_dir)
    : io_(io),
      supervisor_id_(std::move(supervisor_id)),
      state_dir_(std::move(state_dir)),
      cgroups_(use_cgroups ? Cgroups::Detect(supervisor_id_) : nullptr),
      sigchld_(io, SIGCHLD),
      scanner_(1) {
  std::error_code ec;
  if (state_dir_.empty()) {
    char pattern[] = "/tmp/micro-spool.XXXXXX";
    if (::mkdtemp(pattern) != nullptr) state_dir_ = pattern;
    own_state_dir_ = true;
  } else {
    fs::create_directories(state_dir_, ec);
  }
  // Orphaned descendants of our instances come to us, not to init: they are reaped here and
  // nothing lingers as a zombie after a stop.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  sigchld_.async_wait([this](const boost::system::error_code& ec, int) {
    if (!ec) OnSigchld();
  });
  const int inotify = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify >= 0) {
    inotify_ = std::make_unique<asio::posix::stream_descriptor>(io_, inotify);
    WatchInotify();
  }
}

ProcessDriver::~ProcessDriver() {
  boost::system::error_code ignored;
  sigchld_.cancel(ignored);
  if (inotify_) inotify_->close(ignored);
  scanner_.join();
  // Instances still running keep their spools (a next daemon adopts them); the descriptors go.
  for (auto& [id, child] : by_instance_) {
    if (child->pidfd) child->pidfd->close(ignored);
    if (child->poll) child->poll->cancel();
    for (Spool& spool : child->spools) {
      if (spool.fd >= 0) ::close(spool.fd);
      spool.fd = -1;
    }
  }
  if (own_state_dir_) {
    std::error_code ec;
    fs::remove_all(state_dir_, ec);
  }
}

std::string ProcessDriver::isolation() const {
  return cgroups_ ? cgroups_->description() : "process groups (no writable cgroups)";
}

std::string ProcessDriver::PathOf(const std::string& instance_id, const char* suffix) const {
  return state_dir_ + "/" + instance_id + suffix;
}

void ProcessDriver::Start(const LaunchRequest& request, LaunchCallbacks callbacks) {
  auto fail = [&](Status error) {
    asio::post(io_, [cb = std::move(callbacks.on_started), error]() { cb(error); });
  };
  const std::string out_path = PathOf(request.instance_id, ".out");
  const std::string err_path = PathOf(request.instance_id, ".err");
  auto forget_spools = [&] {
    ::unlink(out_path.c_str());
    ::unlink(err_path.c_str());
  };
  auto program = ResolveCommand(request);
  if (!program.ok()) return fail(program.status());
  auto procs = JoinCgroups(cgroups_.get(), request);
  if (!procs.ok()) return fail(procs.status());
  auto pipes = ChildPipes::Open(out_path, err_path);
  if (!pipes.ok()) {
    if (cgroups_) cgroups_->Remove(request.instance_id);
    forget_spools();
    return fail(pipes.status());
  }
  ExecArgs exec(request, supervisor_id_);
  ChildSetup setup = exec.Setup(*program, request, *pipes, *procs);
  setup.rlimit_memory = (!cgroups_ || !cgroups_->limits_memory()) && request.memory_bytes > 0;
  setup.memory = static_cast<rlim_t>(request.memory_bytes);

  auto pid = Spawn(setup);
  pipes->CloseChildEnds();
  for (Fd& fd : *procs) fd.Reset();
  if (!pid.ok()) {
    forget_spools();
    return fail(pid.status());
  }
  if (Status exec_error = AwaitExec(*pid, *pipes, request, *program); !exec_error.ok()) {
    if (cgroups_) cgroups_->Remove(request.instance_id);
    forget_spools();
    return fail(exec_error);
  }
  WriteRecord(PathOf(request.instance_id, ".instance"), *pid, StartTicks(*pid), request.labels);
  auto child = std::make_shared<Child>();
  child->instance_id = request.instance_id;
  child->pid = *pid;
  child->callbacks = std::move(callbacks);
  child->spools[0] = {pipes->out_read.Release(), 0, 0, -1, out_path};
  child->spools[1] = {pipes->err_read.Release(), 0, 0, -1, err_path};
  Track(child);
}

void ProcessDriver::Recover(std::function<void(std::vector<Recovered>)> done) {
  asio::post(scanner_, [this, done = std::move(done)]() mutable {
    std::vector<Recovered> found;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(state_dir_, ec)) {
      if (entry.path().extension() != ".instance") continue;
      auto record = ReadRecord(entry.path().string());
      if (!record) continue;
      const bool alive = record->ticks >= 0 && StartTicks(record->pid) == record->ticks;
      Recovered r;
      r.instance_id = entry.path().stem().string();
      r.pid = alive ? record->pid : 0;
      r.labels = std::move(record->labels);
      found.push_back(std::move(r));
    }
    asio::post(io_, [done = std::move(done), found = std::move(found)]() mutable {
      done(std::move(found));
    });
  });
}

void ProcessDriver::Attach(const std::string& instance_id, int64_t /*since_unix_ms*/,
                           LaunchCallbacks callbacks) {
  auto record = ReadRecord(PathOf(instance_id, ".instance"));
  if (!record) {
    asio::post(io_, [cb = std::move(callbacks.on_started), instance_id] {
      cb(absl::NotFoundError("no record of instance " + instance_id + " to adopt"));
    });
    return;
  }
  auto child = std::make_shared<Child>();
  child->instance_id = instance_id;
  child->pid = record->pid;
  child->adopted = true;
  child->callbacks = std::move(callbacks);
  for (int i = 0; i < 2; ++i) {
    Spool& spool = child->spools[i];
    spool.path = PathOf(instance_id, i == 0 ? ".out" : ".err");
    spool.fd = ::open(spool.path.c_str(), O_RDWR | O_CLOEXEC);
    if (spool.fd < 0) continue;
    // Past a backlog of kMaxBacklogBytes, ReadSpool skips ahead.
    spool.offset = spool.punched = FirstUnread(spool.fd);
  }
  const bool alive = record->ticks >= 0 && StartTicks(record->pid) == record->ticks;
  if (alive) {
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, record->pid, 0));
    if (pidfd >= 0) child->pidfd = std::make_unique<asio::posix::stream_descriptor>(io_, pidfd);
  }
  Track(child);
  if (!child->pidfd) {
    // Gone already (or no pidfd to watch it by): its output, then its end.
    asio::post(io_, [this, child] {
      Finish(child, Exit{-1, 0, "it exited while no daemon was running (exit status unknown)"});
    });
    return;
  }
  child->pidfd->async_wait(asio::posix::stream_descriptor::wait_read,
                           [this, child](const boost::system::error_code& ec) {
                             if (ec || child->finished) return;
                             Finish(child, Exit{-1, 0,
                                                "it exited (exit status unknown: adopted from "
                                                "an earlier daemon)"});
                           });
}

void ProcessDriver::Track(const std::shared_ptr<Child>& child) {
  if (!child->adopted) by_pid_[child->pid] = child;
  by_instance_[child->instance_id] = child;
  bool polled = false;
  for (int i = 0; i < 2; ++i) {
    Spool& spool = child->spools[i];
    if (spool.fd < 0) continue;
    if (inotify_) {
      spool.watch = ::inotify_add_watch(inotify_->native_handle(), spool.path.c_str(), IN_MODIFY);
    }
    if (spool.watch >= 0) {
      by_watch_[spool.watch] = {child, i};
    } else {
      polled = true;
    }
  }
  if (polled) {
    // No watch (inotify's limit): read every 100 ms instead.
    child->poll = std::make_unique<asio::steady_timer>(io_);
    PollSpools(child);
  }
  asio::post(io_, [this, child] {
    child->callbacks.on_started(Launched{child->pid, ""});
    // What is already there: an adopted instance's backlog, or a quick first line.
    for (int i = 0; i < 2; ++i) DrainSpool(child, i);
  });
}

void ProcessDriver::PollSpools(const std::shared_ptr<Child>& child) {
  child->poll->expires_after(std::chrono::milliseconds(100));
  child->poll->async_wait(
      [this, weak = std::weak_ptr<Child>(child)](const boost::system::error_code& ec) {
        auto c = weak.lock();
        if (ec || !c || c->finished) return;
        for (int i = 0; i < 2; ++i) DrainSpool(c, i);
        PollSpools(c);
      });
}

void ProcessDriver::WatchInotify() {
  inotify_->async_wait(
      asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
        if (ec) return;
        alignas(inotify_event) char buffer[16 << 10];
        std::set<std::pair<Child*, int>> seen;
        std::vector<std::pair<std::shared_ptr<Child>, int>> ready;
        for (;;) {
          const ssize_t n = ::read(inotify_->native_handle(), buffer, sizeof buffer);
          if (n <= 0) break;
          for (ssize_t at = 0; at < n;) {
            const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
            at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
            auto it = by_watch_.find(event->wd);
            if (it == by_watch_.end()) continue;
            auto child = it->second.first.lock();
            if (child && seen.insert({child.get(), it->second.second}).second) {
              ready.emplace_back(child, it->second.second);
            }
          }
        }
        for (auto& [child, index] : ready) DrainSpool(child, index);
        WatchInotify();
      });
}

void ProcessDriver::DrainSpool(const std::shared_ptr<Child>& child, int index) {
  if (child->finished) return;
  if (ReadSpool(child, index, kReadBudget, kReadLineBudget) == ReadState::kMore) {
    // Let every other handler run first, then go on reading.
    asio::post(io_, [this, child, index] { DrainSpool(child, index); });
  }
}

ProcessDriver::ReadState ProcessDriver::ReadSpool(const std::shared_ptr<Child>& child, int index,
                                                  size_t budget, size_t line_budget) {
  // One buffer for every spool: reads happen on the io thread only, and a buffer per instance
  // would cost 1,000 supervised processes megabytes for nothing.
  static char buffer[64 << 10];
  Spool& spool = child->spools[index];
  if (spool.fd < 0) return ReadState::kClosed;
  // At most `budget` bytes per call: a service that writes without pause must not keep the
  // event loop (and every other service, and the daemon's signals) waiting on its output.
  size_t read = 0;
  int64_t line_end = -1;
  ReadState state = ReadState::kMore;
  struct stat st {};
  if (::fstat(spool.fd, &st) == 0 && st.st_size - spool.offset > kMaxBacklogBytes) {
    // Too far behind: the newest kMaxBacklogBytes stay, from a line's start, and a note says
    // how much went.
    int64_t resume = st.st_size - kMaxBacklogBytes;
    const ssize_t n = ::pread(spool.fd, buffer, sizeof buffer, resume);
    const void* brk = n > 0 ? std::memchr(buffer, '\n', static_cast<size_t>(n)) : nullptr;
    if (brk != nullptr) resume += static_cast<const char*>(brk) - buffer + 1;
    const std::string note = fmt::format(
        "[micro: {} bytes of output skipped: written faster than the daemon could record them, "
        "or while no daemon ran]\n",
        resume - spool.offset);
    spool.offset = resume;
    line_end = resume;
    if (child->callbacks.on_output) child->callbacks.on_output(OutputStream::kStderr, note);
  }
  while (read < budget && line_budget > 0) {
    ssize_t n = ::pread(spool.fd, buffer, std::min(sizeof buffer, budget - read), spool.offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      state = ReadState::kEmpty;
      break;
    }
    // No more lines than the budget: the chunk ends after its last one allowed.
    for (const char* at = buffer; line_budget > 0;) {
      const void* brk = std::memchr(at, '\n', static_cast<size_t>(buffer + n - at));
      if (brk == nullptr) break;
      at = static_cast<const char*>(brk) + 1;
      if (--line_budget == 0) n = at - buffer;
    }
    const void* last = ::memrchr(buffer, '\n', static_cast<size_t>(n));
    if (last != nullptr) line_end = spool.offset + (static_cast<const char*>(last) - buffer) + 1;
    spool.offset += n;
    read += static_cast<size_t>(n);
    if (child->callbacks.on_output) {
      child->callbacks.on_output(index == 0 ? OutputStream::kStdout : OutputStream::kStderr,
                                 std::string_view(buffer, static_cast<size_t>(n)));
    }
  }
  // What was read, to its last complete line, needs no disk any more; and the next daemon
  // starts reading after it.
  if (line_end > spool.punched) {
    ::fallocate(spool.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, spool.punched,
                line_end - spool.punched);
    spool.punched = line_end;
  }
  return state;
}

void ProcessDriver::OnSigchld() {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    auto it = by_pid_.find(pid);
    if (it == by_pid_.end()) continue;  // an orphaned grandchild, reaped as subreaper
    std::shared_ptr<Child> child = it->second;
    Exit exit;
    if (WIFEXITED(status)) exit.code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) exit.signal = WTERMSIG(status);
    Finish(child, exit);
  }
  sigchld_.async_wait([this](const boost::system::error_code& ec, int) {
    if (!ec) OnSigchld();
  });
}

void ProcessDriver::Finish(const std::shared_ptr<Child>& child, Exit exit) {
  if (child->finished) return;
  child->finished = true;
  // An adopted instance found dead has no process group to kill: its pid may be another's now.
  const bool had_process = !child->adopted || child->pidfd != nullptr;
  if (!child->adopted) by_pid_.erase(child->pid);
  if (child->poll) child->poll->cancel();
  if (child->pidfd) {
    boost::system::error_code ignored;
    child->pidfd->close(ignored);
  }
  // The output written before the exit is in the spools: deliver it, then let go of them, so a
  // grandchild that still writes cannot delay the exit.
  for (int i = 0; i < 2; ++i) {
    ReadSpool(child, i, kFinalReadBudget, kFinalReadLineBudget);
    Spool& spool = child->spools[i];
    if (spool.watch >= 0 && inotify_) {
      ::inotify_rm_watch(inotify_->native_handle(), spool.watch);
      by_watch_.erase(spool.watch);
    }
    if (spool.fd >= 0) ::close(spool.fd);
    spool.fd = -1;
    if (!spool.path.empty()) ::unlink(spool.path.c_str());
  }
  ::unlink(PathOf(child->instance_id, ".instance").c_str());
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
    if (had_process) ::kill(-child->pid, SIGKILL);
    KillMarked("MICRO_INSTANCE_ID=" + child->instance_id, SIGKILL,
               [child, exit](std::vector<pid_t>) { child->callbacks.on_exit(exit); });
  }
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

void ProcessDriver::RemoveLeftovers(const std::set<std::string>& keep, std::function<void()> done) {
  asio::post(scanner_, [this, keep, done = std::move(done)]() mutable {
    std::vector<pid_t> pids;
    for (auto& [pid, instance] : PidsWithEnvAndInstance("MICRO_SUPERVISOR_ID=" + supervisor_id_)) {
      if (keep.count(instance) == 0) pids.push_back(pid);
    }
    asio::post(io_, [this, keep, pids = std::move(pids), done = std::move(done)]() mutable {
      // The records and spools of what is not kept go too (their output with them).
      std::error_code ec;
      std::vector<fs::path> stale;
      for (const auto& entry : fs::directory_iterator(state_dir_, ec)) {
        const std::string id = entry.path().stem().string();
        if (keep.count(id) == 0 && by_instance_.count(id) == 0) stale.push_back(entry.path());
      }
      for (const fs::path& path : stale) fs::remove(path, ec);
      RemoveLeftovers(std::move(pids), keep, std::move(done));
    });
  });
}

void ProcessDriver::RemoveLeftovers(std::vector<pid_t> pids, const std::set<std::string>& keep,
                                    std::function<void()> done) {
  if (cgroups_) {
    for (const std::string& instance : cgroups_->Instances()) {
      if (keep.count(instance)) continue;
      for (int pid : cgroups_->Pids(instance)) pids.push_back(pid);
    }
  }
  std::sort(pids.begin(), pids.end());
  pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
  for (pid_t pid : pids) ::kill(pid, SIGTERM);
  AwaitGone(std::move(pids), kLeftoverPolls, keep, std::move(done));
}

// Reading /proc is file I/O: it runs on the scanner thread, the decision on the io thread.
void ProcessDriver::AwaitGone(std::vector<pid_t> pids, int polls, std::set<std::string> keep,
                              std::function<void()> done) {
  asio::post(scanner_, [this, pids = std::move(pids), polls, keep = std::move(keep),
                        done = std::move(done)]() mutable {
    pids.erase(std::remove_if(pids.begin(), pids.end(), Gone), pids.end());
    asio::post(io_, [this, pids = std::move(pids), polls, keep = std::move(keep),
                     done = std::move(done)]() mutable {
      AwaitGoneStep(std::move(pids), polls, std::move(keep), std::move(done));
    });
  });
}

void ProcessDriver::AwaitGoneStep(std::vector<pid_t> pids, int polls, std::set<std::string> keep,
                                  std::function<void()> done) {
  if (pids.empty() || polls == 0) {
    for (pid_t pid : pids) ::kill(pid, SIGKILL);
    if (cgroups_) {
      for (const std::string& instance : cgroups_->Instances()) {
        if (keep.count(instance) == 0) cgroups_->Remove(instance);
      }
    }
    asio::post(io_, std::move(done));
    return;
  }
  auto timer = std::make_shared<asio::steady_timer>(io_, kLeftoverPoll);
  timer->async_wait([this, timer, pids = std::move(pids), polls, keep = std::move(keep),
                     done = std::move(done)](const boost::system::error_code&) mutable {
    AwaitGone(std::move(pids), polls - 1, std::move(keep), std::move(done));
  });
}

}  // namespace micro::runtime
