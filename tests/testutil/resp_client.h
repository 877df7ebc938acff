#pragma once

// Test helper: a blocking Redis-protocol connection (Boost.Asio), for integration tests that
// speak RESP to the real segd.

#include <poll.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "tests/testutil/resp_reply.h"

namespace segd::testutil {

class RespConnection {
 public:
  explicit RespConnection(uint16_t port) : socket_(ioc_) {
    boost::asio::ip::tcp::endpoint endpoint(boost::asio::ip::make_address("127.0.0.1"), port);
    boost::system::error_code ec;
    socket_.connect(endpoint, ec);
    connected_ = !ec;
  }
  bool connected() const { return connected_; }

  void SendRaw(const std::string& bytes) {
    boost::system::error_code ec;
    boost::asio::write(socket_, boost::asio::buffer(bytes), ec);
  }
  // Sends a command and returns its reply (an error reply with text "closed" if the server
  // closed the connection first).
  RespReply Call(const std::vector<std::string>& args) {
    SendRaw(EncodeResp(args));
    return Read();
  }
  std::string Text(const std::vector<std::string>& args) { return Call(args).ToString(); }
  // The next reply.
  RespReply Read() {
    while (true) {
      size_t pos = 0;
      if (auto r = DecodeResp(buffer_, &pos)) {
        buffer_.erase(0, pos);
        return *r;
      }
      if (!Fill()) {
        RespReply closed;
        closed.type = '-';
        closed.text = "closed";
        return closed;
      }
    }
  }
  // Whether the server closed the connection (reads until EOF; replies before it are dropped).
  bool ServerClosed() {
    for (;;) {
      // A server that never closes fails the test within 30 s instead of hanging it.
      pollfd ready{socket_.native_handle(), POLLIN, 0};
      if (::poll(&ready, 1, 30000) != 1) return false;
      if (!Fill()) return true;
      buffer_.clear();
    }
  }

 private:
  bool Fill() {
    char chunk[65536];
    boost::system::error_code ec;
    size_t n = socket_.read_some(boost::asio::buffer(chunk), ec);
    if (ec || n == 0) return false;
    buffer_.append(chunk, n);
    return true;
  }

  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::socket socket_;
  bool connected_ = false;
  std::string buffer_;
};

}  // namespace segd::testutil
