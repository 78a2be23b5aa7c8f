// http_load: open-loop (constant arrival rate) HTTP/1.1 load generator, for figures such as "p99
// latency of GET /v1/jobs/{id} at 5,000 requests/s over 64 connections", which a closed-loop tool
// (wrk: each connection sends its next request only when the previous answer came back) cannot give.
//
// Schedule: request i (i = 0, 1, ...) is due at t0 + i / rate and belongs to connection i mod C, so
// connection c owns the due times t0 + (c + k*C) / rate, k = 0, 1, ... Each connection is keep-alive
// and sends request k at its due time, or, when request k-1 was still in flight then, as soon as that
// one is answered (the request waits; it is never dropped or re-timed).
// Invariant (coordinated omission corrected, as in wrk2): a request's latency is ALWAYS measured from
// its scheduled due time, never from the moment it was actually written, so a server that stalls is
// charged for the whole queue that built up behind the stall, not just for one slow request.
//
// Timeline: [t0, t0+warmup) warm-up (not in the statistics), [t0+warmup, t0+warmup+duration) the
// measured window, then up to --drain seconds to finish requests that were due in the window.
// Statistics cover the requests due in the measured window. A request due in the window that has no
// answer when the drain ends (queued behind a saturated server) enters the latency distribution with
// the lower bound (drain end - due time) and is counted in "incomplete": an overloaded server shows
// exploding percentiles, not a flattering sample of the requests it happened to finish.
// achieved_rate counts the responses that arrived inside the measured window (throughput delivered).
// Connection errors are counted (request not retried) and the connection is reopened for the next
// request. Non-2xx responses count as responses (latency recorded) and in non_2xx.
//
// Usage: http_load --url http://127.0.0.1:PORT/v1/jobs/ID --rate 5000 --connections 64 --duration 10
//                  [--warmup 1] [--threads 1] [--drain 2]
// Output: one JSON object on stdout: {url, target_rate, achieved_rate, connections, duration_s,
// warmup_s, threads, requests, non_2xx, errors, incomplete, status_codes, p50_ms, p90_ms, p99_ms,
// p999_ms, max_ms, mean_ms, client_cpu_pct}. Bad arguments: one-line error on stderr, exit 2;
// cannot connect at start: exit 1. One I/O thread by default: the server under test needs the other
// core of a 2-core machine (client_cpu_pct reports how busy this program was, 100 = one core).
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using Strand = net::strand<net::io_context::executor_type>;

struct Url {
  std::string host, port, target;
};

/// http://HOST[:PORT][/PATH[?QUERY]]; HOST may be a bracketed IPv6 literal. Throws on anything else.
Url parse_url(const std::string& s) {
  const std::string scheme = "http://";
  if (s.rfind("https://", 0) == 0) throw std::invalid_argument("https is not supported (plain http:// only)");
  if (s.rfind(scheme, 0) != 0) throw std::invalid_argument("URL must start with http://");
  std::string rest = s.substr(scheme.size());
  Url u;
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  if (authority.empty()) throw std::invalid_argument("URL has no host");
  std::string port = "80";
  if (authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos) throw std::invalid_argument("URL has an unterminated [IPv6] host");
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') throw std::invalid_argument("URL has junk after the [IPv6] host");
      port = authority.substr(close + 2);
    }
  } else {
    auto colon = authority.rfind(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) throw std::invalid_argument("URL has no host");
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) < 1 || std::stoi(port) > 65535)
    throw std::invalid_argument("URL has a bad port '" + port + "'");
  u.port = port;
  return u;
}

/// The fixed schedule shared (read-only) by all connections.
struct Plan {
  tcp::resolver::results_type endpoints;
  std::string request;  // the serialized GET, identical for every request
  double rate = 0;
  int connections = 0;
  Clock::time_point t0, window_start, window_end, deadline;

  /// Due time of connection c's k-th request: request number c + k*C overall, at t0 + that / rate.
  Clock::time_point due(int c, std::int64_t k) const {
    double i = static_cast<double>(c) + static_cast<double>(k) * connections;
    return t0 + std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(i * 1e9 / rate)));
  }
};

/// Per-connection results; each connection touches only its own (inside its strand), merged at the end.
struct Stats {
  std::vector<std::int64_t> latency_ns;  // requests due in the window (answered, then censored ones)
  std::map<unsigned, std::uint64_t> status;
  std::uint64_t non_2xx = 0, errors = 0, incomplete = 0, completed_in_window = 0;
  std::string last_error;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(net::io_context& ioc, const Plan& plan, int index, std::atomic<int>& active,
             std::function<void()> on_all_done)
      : plan_(plan), index_(index), strand_(net::make_strand(ioc)), socket_(strand_), timer_(strand_),
        active_(active), on_all_done_(std::move(on_all_done)) {}

  /// Synchronous connect before the clock starts, so set-up cost is not in the statistics.
  void connect_now() {
    net::connect(socket_, plan_.endpoints);
    socket_.set_option(tcp::no_delay(true));
  }

  void start() {
    net::post(strand_, [self = shared_from_this()] { self->next(); });
  }

  /// Drain deadline: abandon whatever is in flight (its handlers see stopping_ and return).
  void stop() {
    net::post(strand_, [self = shared_from_this()] {
      self->stopping_ = true;
      self->timer_.cancel();
      beast::error_code ec;
      self->socket_.close(ec);
    });
  }

  /// After the I/O threads have finished: requests due in the window without an answer enter the
  /// distribution with the lower bound (deadline - due) and are counted as incomplete.
  Stats& finish() {
    if (!done_) {
      for (std::int64_t k = k_;; ++k) {
        Clock::time_point due = plan_.due(index_, k);
        if (due >= plan_.window_end) break;
        if (due < plan_.window_start) continue;
        stats_.latency_ns.push_back(std::chrono::nanoseconds(plan_.deadline - due).count());
        ++stats_.incomplete;
      }
    }
    return stats_;
  }

 private:
  void next() {
    if (stopping_) return;
    due_ = plan_.due(index_, k_);
    if (due_ >= plan_.window_end) {
      done_ = true;
      beast::error_code ec;
      socket_.shutdown(tcp::socket::shutdown_both, ec);
      socket_.close(ec);
      if (active_.fetch_sub(1) == 1) on_all_done_();
      return;
    }
    if (Clock::now() < due_) {
      timer_.expires_at(due_);
      timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (self->stopping_ || ec) return;
        self->send();
      });
    } else {
      send();  // late (previous request still ran past this due time): send now, latency still from due_
    }
  }

  void send() {
    if (socket_.is_open()) return write();
    net::async_connect(socket_, plan_.endpoints, [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
      if (self->stopping_) return;
      if (ec) return self->fail(ec);
      self->socket_.set_option(tcp::no_delay(true), ec);
      self->write();
    });
  }

  void write() {
    net::async_write(socket_, net::buffer(plan_.request), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (self->stopping_) return;
      if (ec) return self->fail(ec);
      self->read();
    });
  }

  void read() {
    res_ = {};
    http::async_read(socket_, buffer_, res_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (self->stopping_) return;
      if (ec) return self->fail(ec);
      self->answered();
    });
  }

  void answered() {
    Clock::time_point now = Clock::now();
    if (due_ >= plan_.window_start) {
      stats_.latency_ns.push_back(std::chrono::nanoseconds(now - due_).count());
      unsigned code = res_.result_int();
      ++stats_.status[code];
      if (code < 200 || code > 299) ++stats_.non_2xx;
    }
    if (now >= plan_.window_start && now < plan_.window_end) ++stats_.completed_in_window;
    if (!res_.keep_alive()) close();
    ++k_;
    next();
  }

  void fail(beast::error_code ec) {
    if (due_ >= plan_.window_start) {
      ++stats_.errors;
      stats_.last_error = ec.message();
    }
    close();
    ++k_;
    next();
  }

  void close() {
    beast::error_code ec;
    socket_.close(ec);
    buffer_.clear();
  }

  const Plan& plan_;
  const int index_;
  Strand strand_;
  tcp::socket socket_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  http::response<http::string_body> res_;
  std::int64_t k_ = 0;
  Clock::time_point due_;
  bool stopping_ = false, done_ = false;
  Stats stats_;
  std::atomic<int>& active_;
  std::function<void()> on_all_done_;
};

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"http_load: open-loop (constant arrival rate) HTTP/1.1 GET load generator; latency from the scheduled time"};
  std::string url_text;
  double rate = 0, duration = 10, warmup = 1, drain = 2;
  int connections = 64, threads = 1;
  cli.add_option("--url", url_text, "http://HOST:PORT/PATH to GET")->required();
  cli.add_option("--rate", rate, "requests per second over all connections")->required();
  cli.add_option("--connections", connections, "keep-alive connections (requests round-robin over them)")->capture_default_str();
  cli.add_option("--duration", duration, "measured seconds (after the warm-up)")->capture_default_str();
  cli.add_option("--warmup", warmup, "seconds at the same rate before measuring (excluded from statistics)")->capture_default_str();
  cli.add_option("--threads", threads, "I/O threads")->capture_default_str();
  cli.add_option("--drain", drain, "seconds after the window to finish requests due in it")->capture_default_str();
  try {
    cli.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return cli.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "http_load: error: " << e.what() << " (see --help)\n";
    return 2;
  }

  auto bad = [](const std::string& msg) {
    std::cerr << "http_load: error: " << msg << "\n";
    return 2;
  };
  Url url;
  try {
    url = parse_url(url_text);
  } catch (const std::exception& e) {
    return bad("bad --url '" + url_text + "': " + e.what());
  }
  if (!(rate > 0) || !std::isfinite(rate)) return bad("--rate must be > 0");
  if (connections < 1 || connections > 10000) return bad("--connections must be in 1..10000");
  if (!(duration > 0) || !std::isfinite(duration)) return bad("--duration must be > 0");
  if (!(warmup >= 0) || !std::isfinite(warmup)) return bad("--warmup must be >= 0");
  if (!(drain >= 0) || !std::isfinite(drain)) return bad("--drain must be >= 0");
  if (threads < 1 || threads > 256) return bad("--threads must be in 1..256");

  net::io_context ioc(threads);
  Plan plan;
  plan.rate = rate;
  plan.connections = connections;
  {
    http::request<http::empty_body> req{http::verb::get, url.target, 11};
    bool default_port = url.port == "80";
    bool v6 = url.host.find(':') != std::string::npos;
    std::string host = v6 ? "[" + url.host + "]" : url.host;
    req.set(http::field::host, default_port ? host : host + ":" + url.port);
    req.set(http::field::user_agent, "http_load");
    req.set(http::field::accept, "*/*");
    req.keep_alive(true);
    std::ostringstream os;
    os << req;
    plan.request = os.str();
  }
  std::vector<std::shared_ptr<Connection>> conns;
  std::atomic<int> active{connections};
  Strand deadline_strand = net::make_strand(ioc);
  net::steady_timer deadline_timer(deadline_strand);
  auto all_done = [&deadline_timer, &deadline_strand] {
    // The last connection finished before the drain deadline: release the deadline timer.
    net::post(deadline_strand, [&deadline_timer] { deadline_timer.cancel(); });
  };
  try {
    tcp::resolver resolver(ioc);
    plan.endpoints = resolver.resolve(url.host, url.port);
    for (int c = 0; c < connections; ++c) {
      conns.push_back(std::make_shared<Connection>(ioc, plan, c, active, all_done));
      conns.back()->connect_now();
    }
  } catch (const std::exception& e) {
    std::cerr << "http_load: error: cannot connect to " << url.host << ":" << url.port << ": " << e.what() << "\n";
    return 1;
  }

  auto secs = [](double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); };
  plan.t0 = Clock::now() + std::chrono::milliseconds(10);
  plan.window_start = plan.t0 + secs(warmup);
  plan.window_end = plan.window_start + secs(duration);
  plan.deadline = plan.window_end + secs(drain);
  deadline_timer.expires_at(plan.deadline);
  deadline_timer.async_wait([&conns](beast::error_code ec) {
    if (ec) return;  // cancelled: every connection finished in time
    for (auto& c : conns) c->stop();
  });
  for (auto& c : conns) c->start();

  double cpu0 = cpu_seconds();
  Clock::time_point wall0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : pool) t.join();
  double cpu = cpu_seconds() - cpu0;
  double wall = std::chrono::duration<double>(Clock::now() - wall0).count();

  std::vector<std::int64_t> lat;
  std::map<unsigned, std::uint64_t> status;
  std::uint64_t non_2xx = 0, errors = 0, incomplete = 0, completed_in_window = 0;
  std::string last_error;
  for (auto& c : conns) {
    Stats& s = c->finish();
    lat.insert(lat.end(), s.latency_ns.begin(), s.latency_ns.end());
    for (auto [code, n] : s.status) status[code] += n;
    non_2xx += s.non_2xx;
    errors += s.errors;
    incomplete += s.incomplete;
    completed_in_window += s.completed_in_window;
    if (!s.last_error.empty()) last_error = s.last_error;
  }
  std::sort(lat.begin(), lat.end());

  nlohmann::ordered_json out;
  out["url"] = url_text;
  out["target_rate"] = rate;
  out["achieved_rate"] = static_cast<double>(completed_in_window) / duration;
  out["connections"] = connections;
  out["duration_s"] = duration;
  out["warmup_s"] = warmup;
  out["threads"] = threads;
  out["requests"] = lat.size() - incomplete;  // answered requests due in the window
  out["non_2xx"] = non_2xx;
  out["errors"] = errors;
  out["incomplete"] = incomplete;
  nlohmann::ordered_json codes = nlohmann::ordered_json::object();
  for (auto [code, n] : status) codes[std::to_string(code)] = n;
  out["status_codes"] = codes;
  auto ms = [](std::int64_t ns) { return static_cast<double>(ns) / 1e6; };
  auto pct = [&](double p) -> nlohmann::ordered_json {
    if (lat.empty()) return nullptr;
    auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(lat.size())));
    return ms(lat[std::clamp<std::size_t>(rank, 1, lat.size()) - 1]);
  };
  out["p50_ms"] = pct(0.50);
  out["p90_ms"] = pct(0.90);
  out["p99_ms"] = pct(0.99);
  out["p999_ms"] = pct(0.999);
  out["max_ms"] = lat.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(ms(lat.back()));
  if (lat.empty()) {
    out["mean_ms"] = nullptr;
  } else {
    long double sum = 0;
    for (auto v : lat) sum += v;
    out["mean_ms"] = static_cast<double>(sum / lat.size()) / 1e6;
  }
  out["client_cpu_pct"] = wall > 0 ? 100.0 * cpu / wall : 0.0;
  if (!last_error.empty()) out["last_error"] = last_error;
  std::cout << out.dump() << std::endl;
  return 0;
}
