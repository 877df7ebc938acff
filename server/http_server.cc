#include "server/http_server.h"

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/detail/deadline_sweep.h"
#include "server/detail/http_session.h"
#include "server/log.h"
#include "server/resp/resp_session.h"

namespace segd::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using detail::HttpSession;

namespace {

constexpr unsigned kWorkerThreads = 2;
// Threads that run mutations under --durability fsync. They mostly sleep in a group fsync, and
// every one waiting joins the same sync, so more threads mean larger groups, not more work.
constexpr unsigned kDurableWriteThreads = 32;

}  // namespace

// Owns the io_context, the acceptor and the worker pools; sessions live in http_session.h.
class HttpServer::Impl {
 public:
  Impl(Api& api, const ServerConfig& config, resp::RespCommands* resp)
      : api_(api),
        config_(config),
        ioc_(static_cast<int>(config.threads)),
        acceptor_(ioc_),
        resp_acceptor_(ioc_),
        sweep_(ioc_, registry_),
        workers_(kWorkerThreads),
        durable_writers_(kDurableWriteThreads),
        gatherer_(api.engine(), ioc_, config.durability == storage::Durability::kFsync),
        host_{api_, config_, workers_, durable_writers_, &gatherer_, draining_, registry_} {
    // Single-user writes go through the gatherer (under fsync, answered once the engine's
    // durability thread reports them synced); other writes under fsync go to the durable-write
    // workers, whose write queue groups them.
    api_.set_write_gatherer(&gatherer_);
    if (resp != nullptr) {
      resp_adds_.emplace(*resp, api_.engine(), ioc_,
                         config.durability == storage::Durability::kFsync);
      resp_host_.emplace(resp::RespHost{*resp, api_.metrics(), config_, durable_writers_, draining_,
                                        registry_, *resp_adds_});
    }
  }

  absl::Status Start();
  uint16_t port() const { return port_; }
  uint16_t resp_port() const { return resp_port_; }
  void Shutdown();

 private:
  absl::Status Listen(tcp::acceptor& acceptor, uint16_t port, absl::string_view what);
  // The executor of a new connection: a strand of the io_context, or with one I/O thread the
  // io_context's own.
  asio::any_io_executor ConnectionExecutor();
  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  void AcceptResp();
  // Past --max-connections (HTTP and RESP together): writes `refusal`, closes the socket and
  // returns true. Otherwise counts the connection open and returns false.
  bool Refuse(tcp::socket& socket, absl::string_view refusal);
  // Posts `fn(connection)` to the executor of every open connection.
  template <typename Fn>
  void ForEachSession(Fn fn);

  Api& api_;
  const ServerConfig& config_;
  // Declared before the io_context: sessions still queued in it when it is destroyed
  // unregister themselves here.
  detail::SessionRegistry registry_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  tcp::acceptor resp_acceptor_;
  detail::DeadlineSweep sweep_;  // the connections' time limits
  asio::thread_pool workers_;
  asio::thread_pool durable_writers_;
  // After the registry: a flush never run holds sessions, which unregister on destruction.
  detail::WriteGatherer gatherer_;
  std::atomic<bool> draining_{false};
  // --tls-cert/--tls-key: loaded by Start.
  std::optional<asio::ssl::context> tls_;
  detail::SessionHost host_;
  // Declared after the registry: a flush never run holds sessions, which unregister on
  // destruction.
  std::optional<resp::AddGatherer> resp_adds_;
  std::optional<resp::RespHost> resp_host_;
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
  uint16_t resp_port_ = 0;
  bool shut_down_ = false;
};

absl::Status HttpServer::Impl::Start() {
  beast::error_code ec;
  if (config_.Tls()) {
    tls_.emplace(asio::ssl::context::tls_server);
    // TLS 1.2 and 1.3 only, with OpenSSL's default ciphers for them.
    tls_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                          asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                          asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use,
                      ec);
    tls_->use_certificate_chain_file(config_.tls_cert_file, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-cert '", config_.tls_cert_file, "': ", ec.message()));
    }
    tls_->use_private_key_file(config_.tls_key_file, asio::ssl::context::pem, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-key '", config_.tls_key_file, "': ", ec.message()));
    }
    if (SSL_CTX_check_private_key(tls_->native_handle()) != 1) {
      return absl::InvalidArgumentError("--tls-key does not match the certificate of --tls-cert");
    }
    host_.tls = &*tls_;
  }
  if (absl::Status s = Listen(acceptor_, config_.port, "HTTP"); !s.ok()) return s;
  port_ = acceptor_.local_endpoint().port();
  if (resp_host_ && config_.resp_port) {
    if (tls_) resp_host_->tls = &*tls_;
    if (absl::Status s = Listen(resp_acceptor_, *config_.resp_port, "RESP"); !s.ok()) return s;
    resp_port_ = resp_acceptor_.local_endpoint().port();
    AcceptResp();
  }
  Accept();
  sweep_.Start();
  threads_.reserve(config_.threads);
  for (unsigned i = 0; i < config_.threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
  return absl::OkStatus();
}

absl::Status HttpServer::Impl::Listen(tcp::acceptor& acceptor, uint16_t port,
                                      absl::string_view what) {
  beast::error_code ec;
  auto address = asio::ip::make_address(config_.bind, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("--bind '", config_.bind, "' is not an IP address: ", ec.message()));
  }
  tcp::endpoint endpoint(address, port);
  auto fail = [&](absl::string_view step) {
    return absl::UnavailableError(absl::StrCat("cannot ", step, " ", config_.bind, ":", port, " (",
                                               what, "): ", ec.message()));
  };
  acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail("open a socket for");
  acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  acceptor.bind(endpoint, ec);
  if (ec) return fail("bind");
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen on");
  return absl::OkStatus();
}

asio::any_io_executor HttpServer::Impl::ConnectionExecutor() {
  // One I/O thread runs every handler in turn already: a strand would only add its own
  // locking and bookkeeping to each operation.
  if (config_.threads == 1) return ioc_.get_executor();
  return asio::make_strand(ioc_);
}

void HttpServer::Impl::Accept() {
  acceptor_.async_accept(ConnectionExecutor(), [this](beast::error_code ec, tcp::socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

bool HttpServer::Impl::Refuse(tcp::socket& socket, absl::string_view refusal) {
  if (api_.metrics().connections_open() < static_cast<int64_t>(config_.max_connections)) {
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    api_.metrics().ConnectionOpened();
    return false;
  }
  api_.metrics().ConnectionRejected();
  beast::error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(asio::buffer(refusal.data(), refusal.size()), ignored);
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  socket.close(ignored);
  return true;
}

namespace {

// Whether accepting stops (the acceptor was closed). Other errors are logged; out of
// descriptors, accepting pauses briefly.
bool AcceptEnded(beast::error_code ec) {
  if (ec == asio::error::operation_aborted) return true;
  Log(LogLevel::kWarn, "accept failed: %s", ec.message().c_str());
  if (ec == asio::error::no_descriptors) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return false;
}

}  // namespace

void HttpServer::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (draining_.load()) return;
  if (ec) {
    if (AcceptEnded(ec)) return;
  } else {
    static const std::string kBusy = [] {
      constexpr absl::string_view kBody =
          R"({"error":{"code":"unavailable","message":"too many connections","details":{}}})";
      return absl::StrCat(
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; "
          "charset=utf-8\r\nConnection: close\r\nContent-Length: ",
          kBody.size(), "\r\n\r\n", kBody);
    }();
    if (!Refuse(socket, kBusy)) std::make_shared<HttpSession>(host_, std::move(socket))->Run();
  }
  Accept();
}

void HttpServer::Impl::AcceptResp() {
  resp_acceptor_.async_accept(
      ConnectionExecutor(), [this](beast::error_code ec, tcp::socket socket) {
        if (draining_.load()) return;
        if (ec) {
          if (AcceptEnded(ec)) return;
        } else if (!Refuse(socket, "-ERR max number of clients reached\r\n")) {
          std::make_shared<resp::RespSession>(*resp_host_, std::move(socket))->Run();
        }
        AcceptResp();
      });
}

template <typename Fn>
void HttpServer::Impl::ForEachSession(Fn fn) {
  for (std::shared_ptr<detail::Connection>& self : registry_.Live()) {
    auto executor = self->executor();
    asio::post(executor, [self = std::move(self), fn] { fn(*self); });
  }
}

void HttpServer::Impl::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  draining_.store(true);
  if (threads_.empty()) return;  // never started
  asio::post(acceptor_.get_executor(), [this] {
    beast::error_code ignored;
    acceptor_.close(ignored);
    resp_acceptor_.close(ignored);
  });
  ForEachSession([](detail::Connection& c) { c.OnDrain(); });
  registry_.WaitEmpty(std::chrono::seconds(config_.shutdown_grace_seconds));
  // Past the grace period: close what remains (this also stops streamed reports).
  ForEachSession([](detail::Connection& c) { c.ForceClose(); });
  registry_.WaitEmpty(std::chrono::seconds(1));
  ioc_.stop();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  workers_.join();
  durable_writers_.join();
}

HttpServer::HttpServer(Api& api, const ServerConfig& config, resp::RespCommands* resp)
    : impl_(std::make_unique<Impl>(api, config, resp)) {}

HttpServer::~HttpServer() {
  if (impl_) impl_->Shutdown();
}

absl::Status HttpServer::Start() { return impl_->Start(); }
uint16_t HttpServer::port() const { return impl_->port(); }
uint16_t HttpServer::resp_port() const { return impl_->resp_port(); }
void HttpServer::Shutdown() { impl_->Shutdown(); }

}  // namespace segd::server
