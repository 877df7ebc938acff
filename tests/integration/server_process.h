#pragma once

// Test helpers that run the real segd binary and speak HTTP to it.
//
// ServerProcess starts build/bin/segd on a free port (--port 0; the port is read from its
// start-up line) with a given data directory, and stops it with SIGTERM or SIGKILL.
// HttpClient is a blocking keep-alive client over one connection (Beast, synchronous).

#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace segd::testutil {

// Runs `segd keys create --data-dir dir --role role [--segments globs]` and returns the key it
// prints (empty on failure). segd must not be running on `dir`.
inline std::string CreateKeyWithCli(const std::string& data_dir, const std::string& role,
                                    const std::string& segments = "") {
  std::string command =
      std::string(SEGD_BINARY) + " keys create --data-dir '" + data_dir + "' --role " + role;
  if (!segments.empty()) command += " --segments '" + segments + "'";
  command += " 2>/dev/null";
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return "";
  char line[256] = {0};
  std::string key = std::fgets(line, sizeof line, p) ? line : "";
  if (pclose(p) != 0) return "";
  while (!key.empty() && key.back() == '\n') key.pop_back();
  return key;
}

class ServerProcess {
 public:
  // Starts segd with `--data-dir dir --port 0 --bind 127.0.0.1` plus `extra` flags and waits
  // for its start-up line. started() is false (and start_error() says why) if it did not start.
  ServerProcess(const std::string& data_dir, std::vector<std::string> extra = {}) {
    int out[2];
    if (pipe(out) != 0) return;
    std::vector<std::string> args = {SEGD_BINARY, "--data-dir", data_dir,      "--port", "0",
                                     "--bind",    "127.0.0.1",  "--log-level", "warn"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      close(out[0]);
      close(out[1]);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    FILE* f = fdopen(out[0], "r");
    char line[4096];
    if (f && std::fgets(line, sizeof line, f)) {
      start_line_ = line;
      // "listening on http://ADDR:PORT, …"
      const size_t scheme = start_line_.find("://");
      const size_t end = start_line_.find(',', scheme);
      const size_t colon = end == std::string::npos ? end : start_line_.rfind(':', end);
      if (scheme != std::string::npos && colon != std::string::npos && colon > scheme + 2) {
        port_ = std::stoi(start_line_.substr(colon + 1));
      }
      // "…; RESP (Redis protocol) on ADDR:PORT" with --resp-port.
      const size_t resp = start_line_.find("RESP (Redis protocol) on ");
      const size_t resp_colon = resp == std::string::npos ? resp : start_line_.rfind(':');
      if (resp_colon != std::string::npos && resp_colon > resp) {
        resp_port_ = std::stoi(start_line_.substr(resp_colon + 1));
      }
    }
    if (f) std::fclose(f);
  }

  ~ServerProcess() {
    if (pid_ > 0 && !waited_) Kill();
  }

  bool started() const { return port_ > 0; }
  uint16_t port() const { return static_cast<uint16_t>(port_); }
  // The RESP port (with --resp-port), 0 otherwise.
  uint16_t resp_port() const { return static_cast<uint16_t>(resp_port_); }
  pid_t pid() const { return pid_; }
  const std::string& start_line() const { return start_line_; }

  // Sends SIGTERM and returns the exit code (or 128 + signal).
  int Terminate() { return SignalAndWait(SIGTERM); }
  // kill -9.
  int Kill() { return SignalAndWait(SIGKILL); }

  // Sends SIGTERM and waits at most `seconds`; returns the exit code as Terminate does, or
  // kTimedOut (after a kill -9) if the process had not exited by then.
  static constexpr int kTimedOut = -2;
  int TerminateWithin(int seconds) {
    if (pid_ <= 0 || waited_) return -1;
    ::kill(pid_, SIGTERM);
    for (int waited_ms = 0; waited_ms < seconds * 1000; waited_ms += 10) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        waited_ = true;
        return ExitCode(status);
      }
      usleep(10'000);
    }
    Kill();
    return kTimedOut;
  }

 private:
  int SignalAndWait(int signal) {
    if (pid_ <= 0 || waited_) return -1;
    ::kill(pid_, signal);
    int status = 0;
    waitpid(pid_, &status, 0);
    waited_ = true;
    return ExitCode(status);
  }

  // The exit code, or 128 + the signal that ended the process.
  static int ExitCode(int status) {
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  pid_t pid_ = -1;
  int port_ = 0;
  int resp_port_ = 0;
  bool waited_ = false;
  std::string start_line_;
};

// The bytes of one HTTP/1.1 request with a JSON body (when `body` is not empty), for tests that
// pipeline requests by sending raw bytes.
inline std::string RawRequest(const std::string& method, const std::string& target,
                              const std::string& body = "") {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: x\r\n";
  if (!body.empty()) {
    r +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return r + "\r\n" + body;
}

struct HttpResult {
  unsigned status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  bool keep_alive = true;

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class HttpClient {
 public:
  explicit HttpClient(uint16_t port) : stream_(ioc_) {
    boost::asio::ip::tcp::endpoint endpoint(boost::asio::ip::make_address("127.0.0.1"), port);
    stream_.connect(endpoint);
  }

  HttpResult Request(const std::string& method, const std::string& target,
                     const std::string& body = "",
                     const std::string& content_type = "application/json",
                     std::vector<std::pair<std::string, std::string>> headers = {}) {
    namespace http = boost::beast::http;
    http::request<http::string_body> req(http::string_to_verb(method), target, 11);
    if (req.method() == http::verb::unknown) req.method_string(method);
    req.set(http::field::host, "127.0.0.1");
    if (!body.empty()) {
      req.set(http::field::content_type, content_type);
      req.body() = body;
    }
    for (auto& [name, value] : headers) req.set(name, value);
    req.prepare_payload();
    http::write(stream_, req);
    return ReadResponse(/*head=*/method == "HEAD");
  }

  HttpResult Get(const std::string& target) { return Request("GET", target); }
  HttpResult Post(const std::string& target, const std::string& body) {
    return Request("POST", target, body);
  }

  // Sends raw bytes as they are.
  void SendRaw(const std::string& bytes) {
    boost::asio::write(stream_, boost::asio::buffer(bytes));
  }

  // Reads one response; status 0 if the connection closed or failed first. `head`: the answer
  // to a HEAD request, which has no body whatever its headers say.
  HttpResult ReadResponse(bool head = false) {
    namespace http = boost::beast::http;
    HttpResult result;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ull << 30);
    parser.skip(head);
    boost::beast::error_code ec;
    http::read(stream_, buffer_, parser, ec);
    if (ec) return result;
    auto& res = parser.get();
    result.status = res.result_int();
    result.body = res.body();
    result.keep_alive = res.keep_alive();
    for (const auto& field : res) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      result.headers[name] = std::string(field.value());
    }
    return result;
  }

  // True once the server has closed the connection (reads EOF or an error); false if it has
  // not within 30 s, so that a server that never closes fails the test instead of hanging it.
  bool ServerClosed() {
    pollfd ready{stream_.native_handle(), POLLIN, 0};
    if (::poll(&ready, 1, 30000) != 1) return false;
    char byte;
    boost::beast::error_code ec;
    stream_.read_some(boost::asio::buffer(&byte, 1), ec);
    return static_cast<bool>(ec);
  }

 private:
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::socket stream_;
  boost::beast::flat_buffer buffer_;
};

// The value of an unlabelled metric in a /metrics body, or -1.
inline double MetricValue(const std::string& body, const std::string& name) {
  const std::string line = "\n" + name + " ";
  size_t at = body.find(line);
  if (at == std::string::npos) return -1;
  return std::stod(body.substr(at + line.size()));
}

}  // namespace segd::testutil
