// segd-feed-bench: measures the change feed of a running segd over HTTP.
//
//   segd-feed-bench catchup --port P [--after 0]
//       Pages through GET /v1/changes?limit=10000 from a cursor to the end, on one keep-alive
//       connection, and prints changes/s.
//   segd-feed-bench latency --port P --segment S --rate R --seconds N [--writers W]
//       Holds one event stream open while W connections add new users to S at R writes/s
//       in all (paced, open loop); prints percentiles of the time from a write's acknowledgement
//       (as its writer saw it) to its change arriving on the stream.
//   segd-feed-bench idle --port P --subscribers N [--segment S] [--seconds T]
//       Opens N event streams (filtered to S if given) and holds them for T seconds (default:
//       until killed), printing "open N" once they all are.
//
//   segd-feed-bench receive --listen-port P --expect N
//       A webhook receiver on 127.0.0.1:P that answers 200 to every batch; prints changes/s
//       from the first batch to the one that completes N changes.
//
// Every mode prints one JSON object on its last line.

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;

std::map<std::string, std::string> Flags(int argc, char** argv, int first) {
  std::map<std::string, std::string> flags;
  for (int i = first; i + 1 < argc; i += 2) {
    std::string name = argv[i];
    if (name.rfind("--", 0) != 0) {
      std::fprintf(stderr, "expected a --flag, got %s\n", argv[i]);
      std::exit(2);
    }
    flags[name.substr(2)] = argv[i + 1];
  }
  return flags;
}

std::string Get(const std::map<std::string, std::string>& flags, const std::string& name,
                const std::string& fallback = "") {
  auto it = flags.find(name);
  if (it != flags.end()) return it->second;
  if (fallback.empty()) {
    std::fprintf(stderr, "--%s is required\n", name.c_str());
    std::exit(2);
  }
  return fallback;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

class Connection {
 public:
  explicit Connection(uint16_t port) : socket_(ioc_) {
    socket_.connect({asio::ip::make_address("127.0.0.1"), port});
    socket_.set_option(asio::ip::tcp::no_delay(true));
  }
  http::response<http::string_body> Request(http::verb verb, const std::string& target,
                                            const std::string& body = "") {
    http::request<http::string_body> req(verb, target, 11);
    req.set(http::field::host, "127.0.0.1");
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();
    http::write(socket_, req);
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ull << 30);
    http::read(socket_, buffer_, parser);
    return parser.release();
  }
  asio::ip::tcp::socket& socket() { return socket_; }
  beast::flat_buffer& buffer() { return buffer_; }

 private:
  asio::io_context ioc_;
  asio::ip::tcp::socket socket_;
  beast::flat_buffer buffer_;
};

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

// The last line of catchup and receive: changes per second and JSON bytes per second.
void PrintRate(const char* mode, const char* unit, uint64_t changes, uint64_t units, double seconds,
               uint64_t bytes) {
  std::printf(
      "{\"mode\":\"%s\",\"changes\":%llu,\"%s\":%llu,\"seconds\":%.3f,"
      "\"changes_per_second\":%.0f,\"megabytes_per_second\":%.1f}\n",
      mode, static_cast<unsigned long long>(changes), unit, static_cast<unsigned long long>(units),
      seconds, changes / seconds, bytes / seconds / 1e6);
}

int Catchup(const std::map<std::string, std::string>& flags) {
  Connection c(static_cast<uint16_t>(std::stoi(Get(flags, "port"))));
  std::string cursor = Get(flags, "after", "0");
  uint64_t changes = 0, bytes = 0, pages = 0;
  const Clock::time_point start = Clock::now();
  for (;;) {
    auto res = c.Request(http::verb::get, "/v1/changes?limit=10000&after=" + cursor);
    if (res.result_int() != 200) {
      std::fprintf(stderr, "status %u: %s\n", res.result_int(), res.body().c_str());
      return 1;
    }
    const std::string& body = res.body();
    const size_t n = Count(body, "{\"cursor\":");
    const size_t at = body.rfind("\"next\":\"");
    cursor = body.substr(at + 8, 16);
    changes += n;
    bytes += body.size();
    ++pages;
    if (n == 0) break;
  }
  PrintRate("catchup", "pages", changes, pages, Seconds(Clock::now() - start), bytes);
  return 0;
}

// Opens an event stream on `c` and calls on_text with each piece of body as it arrives, until
// it returns false.
void ReadStream(Connection& c, const std::string& target,
                const std::function<bool(beast::string_view)>& on_text) {
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n";
  asio::write(c.socket(), asio::buffer(req));
  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);
  bool go = true;
  std::function<size_t(uint64_t, beast::string_view, beast::error_code&)> cb =
      [&](uint64_t, beast::string_view body, beast::error_code&) {
        go = on_text(body);
        return body.size();
      };
  parser.on_chunk_body(cb);
  http::read_header(c.socket(), c.buffer(), parser);
  while (go && !parser.is_done()) {
    beast::error_code ec;
    http::read_some(c.socket(), c.buffer(), parser, ec);
    if (ec) break;
  }
}

int Latency(const std::map<std::string, std::string>& flags) {
  const uint16_t port = static_cast<uint16_t>(std::stoi(Get(flags, "port")));
  const std::string segment = Get(flags, "segment");
  const double rate = std::stod(Get(flags, "rate"));
  const double seconds = std::stod(Get(flags, "seconds"));
  const int writers = std::stoi(Get(flags, "writers", "8"));
  const uint64_t total = static_cast<uint64_t>(rate * seconds);
  const std::string prefix = "lat" + std::to_string(::getpid()) + "-";
  std::vector<std::atomic<int64_t>> acked(total);
  for (auto& a : acked) a.store(-1);
  std::vector<int64_t> arrived(total, -1);
  const Clock::time_point start = Clock::now();
  auto now_ns = [&] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
  };
  std::atomic<uint64_t> received{0};
  Connection stream(port);
  std::thread reader([&] {
    std::string pending;
    ReadStream(stream, "/v1/changes/stream?segment=" + segment, [&](beast::string_view text) {
      pending.append(text.data(), text.size());
      const int64_t t = now_ns();
      size_t pos;
      while ((pos = pending.find("\"user_id\":\"" + prefix)) != std::string::npos) {
        const size_t begin = pos + 11 + prefix.size();
        const size_t end = pending.find('"', begin);
        if (end == std::string::npos) break;
        const uint64_t i = std::stoull(pending.substr(begin, end - begin));
        if (i < total && arrived[i] < 0) arrived[i] = t;
        pending.erase(0, end);
        if (received.fetch_add(1) + 1 == total) return false;
      }
      return true;
    });
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the stream is open
  std::vector<std::thread> threads;
  std::atomic<uint64_t> failures{0};
  const Clock::time_point writes_start = Clock::now();
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      Connection c(port);
      const std::string body = "{\"add\":[\"" + segment + "\"]}";
      for (uint64_t i = w; i < total; i += writers) {
        // Paced: write i goes out at i / rate seconds (open loop: late writes are not dropped).
        const auto due =
            writes_start + std::chrono::nanoseconds(static_cast<int64_t>(i / rate * 1e9));
        std::this_thread::sleep_until(due);
        auto res = c.Request(http::verb::post,
                             "/v1/users/" + prefix + std::to_string(i) + "/segments", body);
        if (res.result_int() != 200) failures.fetch_add(1);
        acked[i].store(now_ns());
      }
    });
  }
  for (auto& t : threads) t.join();
  const double write_seconds = Seconds(Clock::now() - writes_start);
  // Wait for the stream to deliver the last changes (at most 5 s more).
  for (int i = 0; i < 500 && received.load() < total; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  beast::error_code ignored;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  reader.join();
  std::vector<double> ms;
  for (uint64_t i = 0; i < total; ++i) {
    if (arrived[i] < 0 || acked[i].load() < 0) continue;
    ms.push_back(std::max<int64_t>(0, arrived[i] - acked[i].load()) / 1e6);
  }
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) {
    return ms.empty() ? 0.0 : ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))];
  };
  std::printf(
      "{\"mode\":\"latency\",\"writes\":%llu,\"writes_per_second\":%.0f,\"delivered\":%zu,"
      "\"failures\":%llu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f}\n",
      static_cast<unsigned long long>(total), total / write_seconds, ms.size(),
      static_cast<unsigned long long>(failures.load()), pct(0.5), pct(0.99), pct(0.999),
      ms.empty() ? 0.0 : ms.back());
  return 0;
}

// A webhook receiver: answers 200 to every POST, counts the changes in them, and stops once
// `expect` have arrived.
int Receive(const std::map<std::string, std::string>& flags) {
  const uint16_t port = static_cast<uint16_t>(std::stoi(Get(flags, "listen-port")));
  const uint64_t expect = std::stoull(Get(flags, "expect"));
  asio::io_context ioc;
  asio::ip::tcp::acceptor acceptor(ioc, {asio::ip::make_address("127.0.0.1"), port});
  std::printf("listening %u\n", port);
  std::fflush(stdout);
  uint64_t changes = 0, batches = 0, bytes = 0;
  Clock::time_point first;
  while (changes < expect) {
    asio::ip::tcp::socket socket(ioc);
    acceptor.accept(socket);
    beast::flat_buffer buffer;
    beast::error_code ec;
    for (;;) {  // keep-alive, should the sender reuse the connection
      http::request_parser<http::string_body> parser;
      parser.body_limit(1ull << 30);
      http::read(socket, buffer, parser, ec);
      if (ec) break;
      if (batches++ == 0) first = Clock::now();
      const std::string& body = parser.get().body();
      changes += Count(body, "{\"cursor\":");
      bytes += body.size();
      http::response<http::string_body> res(http::status::ok, 11);
      res.keep_alive(parser.get().keep_alive());
      res.prepare_payload();
      http::write(socket, res, ec);
      if (ec || !res.keep_alive()) break;
    }
  }
  PrintRate("receive", "batches", changes, batches, Seconds(Clock::now() - first), bytes);
  return 0;
}

int Idle(const std::map<std::string, std::string>& flags) {
  const uint16_t port = static_cast<uint16_t>(std::stoi(Get(flags, "port")));
  const int n = std::stoi(Get(flags, "subscribers"));
  const std::string segment = Get(flags, "segment", "-");
  const double seconds = std::stod(Get(flags, "seconds", "0"));
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, n + 100);
  setrlimit(RLIMIT_NOFILE, &limit);
  asio::io_context ioc;
  std::vector<std::unique_ptr<asio::ip::tcp::socket>> sockets;
  const std::string target =
      segment == "-" ? "/v1/changes/stream" : "/v1/changes/stream?segment=" + segment;
  const std::string req = "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int i = 0; i < n; ++i) {
    auto s = std::make_unique<asio::ip::tcp::socket>(ioc);
    beast::error_code ec;
    s->connect({asio::ip::make_address("127.0.0.1"), port}, ec);
    if (ec) {
      std::fprintf(stderr, "connection %d: %s\n", i, ec.message().c_str());
      return 1;
    }
    asio::write(*s, asio::buffer(req));
    sockets.push_back(std::move(s));
  }
  // Each answers with its head and a first bookmark.
  for (auto& s : sockets) {
    char buf[512];
    s->read_some(asio::buffer(buf));
  }
  std::printf("open %d\n", n);
  std::fflush(stdout);
  if (seconds > 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  } else {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }
  std::printf("{\"mode\":\"idle\",\"subscribers\":%d}\n", n);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help") {
    std::printf(
        "usage: segd-feed-bench catchup --port P [--after CURSOR]\n"
        "       segd-feed-bench latency --port P --segment S --rate R --seconds N [--writers W]\n"
        "       segd-feed-bench idle --port P --subscribers N [--segment S] [--seconds T]\n"
        "       segd-feed-bench receive --listen-port P --expect N\n");
    return argc < 2 ? 2 : 0;
  }
  const std::string mode = argv[1];
  const auto flags = Flags(argc, argv, 2);
  try {
    if (mode == "catchup") return Catchup(flags);
    if (mode == "latency") return Latency(flags);
    if (mode == "idle") return Idle(flags);
    if (mode == "receive") return Receive(flags);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "segd-feed-bench: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
