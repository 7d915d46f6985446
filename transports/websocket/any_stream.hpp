// One stream type for the listener's plain and TLS connections.
//
// Beast's HTTP and WebSocket operations are templates on the stream type. Instantiated
// for both beast::tcp_stream and beast::ssl_stream<beast::tcp_stream> they made two
// copies of every composed operation: ~860 KB of code, the larger part of linewired.
// AnyStream puts the choice behind a virtual call per read_some/write_some (the
// handler type-erased with asio::any_completion_handler), so those operations exist
// once; only the few primitive operations of each real stream are compiled twice, in
// any_stream.cpp. Included by this folder's .cpp files (through listener_impl.hpp):
// Beast stays out of shared headers.
#pragma once

#include <array>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <cstddef>
#include <memory>

namespace linewire::websocket {

// A buffer sequence held by value, as an asynchronous operation must hold it: the
// first kMax buffers of any sequence. A read_some or write_some may do less than it
// was given, so taking a prefix of a longer sequence is correct, only less work per call.
template <class Buffer>
class BufferList {
 public:
  static constexpr std::size_t kMax = 16;

  template <class Sequence>
  explicit BufferList(const Sequence& sequence) {
    for (auto it = boost::asio::buffer_sequence_begin(sequence);
         it != boost::asio::buffer_sequence_end(sequence) && size_ < kMax; ++it)
      buffers_[size_++] = Buffer(*it);
  }
  const Buffer* begin() const { return buffers_.data(); }
  const Buffer* end() const { return buffers_.data() + size_; }

 private:
  std::array<Buffer, kMax> buffers_{};
  std::size_t size_ = 0;
};

class AnyStream {
 public:
  using executor_type = boost::asio::any_io_executor;
  using IoHandler =
      boost::asio::any_completion_handler<void(boost::system::error_code, std::size_t)>;
  using DoneHandler = boost::asio::any_completion_handler<void(boost::system::error_code)>;

  static AnyStream plain(boost::asio::ip::tcp::socket socket);
  // The TLS server side: handshake() before anything else.
  static AnyStream tls(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& context);

  executor_type get_executor() { return impl_->tcp().get_executor(); }
  bool is_tls() const { return impl_->is_tls(); }
  // The TCP layer: timeouts and the socket itself (beast::get_lowest_layer finds
  // AnyStream, which has no next_layer, so these stand in for the tcp_stream's own).
  void expires_after(std::chrono::steady_clock::duration d) { impl_->tcp().expires_after(d); }
  void expires_never() { impl_->tcp().expires_never(); }
  boost::asio::ip::tcp::socket& socket() { return impl_->tcp().socket(); }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, BufferList<boost::asio::mutable_buffer> b) {
          impl_->read_some(b, IoHandler(std::move(handler)));
        },
        token, BufferList<boost::asio::mutable_buffer>(buffers));
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, BufferList<boost::asio::const_buffer> b) {
          impl_->write_some(b, IoHandler(std::move(handler)));
        },
        token, BufferList<boost::asio::const_buffer>(buffers));
  }

  // TLS: the server handshake; plain: completes at once.
  void async_handshake(DoneHandler handler) { impl_->handshake(std::move(handler)); }
  // Ends the sending side: TLS close_notify, or TCP shutdown(send).
  void async_shutdown(DoneHandler handler) { impl_->shutdown(std::move(handler)); }

  // Beast's customization points for websocket::stream<AnyStream>.
  friend void beast_close_socket(AnyStream& s) {
    boost::system::error_code ignored;
    s.socket().close(ignored);
  }
  template <class Handler>
  friend void async_teardown(boost::beast::role_type role, AnyStream& s, Handler&& handler) {
    s.impl_->teardown(role, DoneHandler(std::forward<Handler>(handler)));
  }
  friend void teardown(boost::beast::role_type role, AnyStream& s, boost::system::error_code& ec) {
    s.impl_->teardown_now(role, ec);
  }

  struct Base {
    virtual ~Base() = default;
    virtual bool is_tls() const = 0;
    virtual boost::beast::tcp_stream& tcp() = 0;
    virtual void read_some(BufferList<boost::asio::mutable_buffer> b, IoHandler h) = 0;
    virtual void write_some(BufferList<boost::asio::const_buffer> b, IoHandler h) = 0;
    virtual void handshake(DoneHandler h) = 0;
    virtual void shutdown(DoneHandler h) = 0;
    virtual void teardown(boost::beast::role_type role, DoneHandler h) = 0;
    virtual void teardown_now(boost::beast::role_type role, boost::system::error_code& ec) = 0;
  };

 private:
  explicit AnyStream(std::unique_ptr<Base> impl) : impl_(std::move(impl)) {}
  std::unique_ptr<Base> impl_;
};

}  // namespace linewire::websocket
