// Test helper: a throw-away PostgreSQL cluster (Debian's postgresql package: initdb + postgres) in a
// temp directory, listening on 127.0.0.1 on a free port and on a Unix socket in that directory, with
// trust authentication for the superuser "tsm" and fsync off (the tests need no durability of the
// cluster itself). PostgreSQL refuses to run as root: when the test runs as root, initdb and postgres
// run as the unprivileged "postgres" user (or "nobody") through setgid/setuid in the forked child;
// the temp directory is handed to that user. Nothing is created outside the temp directory.
// stop() shuts the server down (fast: SIGINT) and start() brings it back on the same port with the
// same data (the database-restart tests). The destructor stops it and removes the directory.
// skip_reason(): why the PostgreSQL tests cannot run here ("" when they can); under CI=true a
// missing PostgreSQL is a failure, not a skip (scripts/install-deps.sh installs it).
#pragma once
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace tsm::testing {

class PgCluster {
 public:
  /// The directory holding initdb and postgres: $TSM_PG_BIN, else the newest /usr/lib/postgresql/*/bin.
  static std::string bin_dir() {
    if (const char* e = std::getenv("TSM_PG_BIN"); e && *e) return e;
    namespace fs = std::filesystem;
    std::string best;
    std::error_code ec;
    for (fs::directory_iterator it("/usr/lib/postgresql", ec), end; !ec && it != end; it.increment(ec)) {
      const std::string bin = it->path().string() + "/bin";
      if (::access((bin + "/initdb").c_str(), X_OK) == 0 && ::access((bin + "/postgres").c_str(), X_OK) == 0 &&
          (best.empty() || std::stoi(it->path().filename().string()) > std::stoi(fs::path(best).parent_path().filename().string())))
        best = bin;
    }
    return best;
  }
  static bool in_ci() {
    const char* ci = std::getenv("CI");
    return ci && (std::string(ci) == "true" || std::string(ci) == "1");
  }
  /// Empty when a cluster can be started; else what is missing.
  static std::string skip_reason() {
    if (bin_dir().empty())
      return "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin or TSM_PG_BIN): install the postgresql "
             "package (scripts/install-deps.sh) to run the PostgreSQL tests";
    if (::geteuid() == 0 && !::getpwnam("postgres") && !::getpwnam("nobody"))
      return "running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL as";
    return "";
  }

  PgCluster() {
    char tmpl[] = "/tmp/tsm-pg-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    if (::geteuid() == 0) {
      const passwd* pw = ::getpwnam("postgres");
      if (!pw) pw = ::getpwnam("nobody");
      if (!pw) throw std::runtime_error(skip_reason());
      uid_ = pw->pw_uid;
      gid_ = pw->pw_gid;
      if (::chown(dir_.c_str(), uid_, gid_) != 0) throw std::runtime_error("chown " + dir_ + " failed");
    }
    int rc = run_as({bin_dir() + "/initdb", "-D", dir_ + "/data", "-U", "tsm", "-A", "trust", "--no-sync", "-E", "UTF8",
                     "--locale=C"},
                    dir_ + "/initdb.log");
    if (rc != 0) throw std::runtime_error("initdb failed (exit " + std::to_string(rc) + "); see " + dir_ + "/initdb.log");
    port_ = free_port();
    start();
  }
  ~PgCluster() {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  /// Starts the server (again) on port(); throws when it does not accept connections within 60 s.
  void start() {
    if (pid_ > 0) return;
    pid_ = spawn_as({bin_dir() + "/postgres", "-D", dir_ + "/data", "-k", dir_, "-p", std::to_string(port_), "-c",
                     "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c",
                     "full_page_writes=off", "-c", "max_connections=200"},
                    dir_ + "/postgres.log");
    for (int i = 0; i < 600; ++i) {
      if (PQping(conninfo("postgres").c_str()) == PQPING_OK) return;
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("postgres exited at start; see " + dir_ + "/postgres.log");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("postgres did not accept connections; see " + dir_ + "/postgres.log");
  }
  /// Fast shutdown (clients disconnected, no data lost).
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGINT);
    int st;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  std::string conninfo(const std::string& db) const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " user=tsm dbname=" + db + " connect_timeout=5";
  }
  std::string uri(const std::string& db) const {
    return "postgresql://tsm@127.0.0.1:" + std::to_string(port_) + "/" + db;
  }
  /// A new empty database with a unique name; returns its name.
  std::string create_database(const std::string& prefix = "t") {
    const std::string name = prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(++dbs_);
    exec("postgres", "CREATE DATABASE " + name);
    return name;
  }
  /// Runs `sql` on `db`; returns the first column of every row (throws with the server's message).
  std::vector<std::string> exec(const std::string& db, const std::string& sql) const {
    std::unique_ptr<PGconn, void (*)(PGconn*)> c(PQconnectdb(conninfo(db).c_str()), PQfinish);
    if (PQstatus(c.get()) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(c.get()));
    std::unique_ptr<PGresult, void (*)(PGresult*)> r(PQexec(c.get(), sql.c_str()), PQclear);
    const auto st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) throw std::runtime_error(sql + ": " + PQresultErrorMessage(r.get()));
    std::vector<std::string> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) out.emplace_back(PQnfields(r.get()) ? PQgetvalue(r.get(), i, 0) : "");
    return out;
  }

 private:
  static int free_port() {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t n = sizeof a;
    if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &n) != 0) {
      ::close(s);
      throw std::runtime_error("no free port");
    }
    ::close(s);
    return ntohs(a.sin_port);
  }
  pid_t spawn_as(std::vector<std::string> args, const std::string& log) const {
    pid_t pid = ::fork();
    if (pid == 0) {
      if (::geteuid() == 0) {
        if (::setgroups(0, nullptr) != 0 || ::setgid(gid_) != 0 || ::setuid(uid_) != 0) std::_Exit(126);
      }
      if (FILE* f = std::fopen(log.c_str(), "a")) {
        ::dup2(fileno(f), 1);
        ::dup2(fileno(f), 2);
      }
      ::chdir(dir_.c_str());
      std::vector<char*> argv;
      for (auto& s : args) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      std::_Exit(127);
    }
    return pid;
  }
  int run_as(std::vector<std::string> args, const std::string& log) const {
    pid_t pid = spawn_as(std::move(args), log);
    int st = 0;
    ::waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

  std::string dir_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  int port_ = 0;
  pid_t pid_ = -1;
  int dbs_ = 0;
};

}  // namespace tsm::testing
