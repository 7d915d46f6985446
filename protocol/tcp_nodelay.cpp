#include "protocol/tcp_nodelay.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdlib>
#include <string>

namespace linewire::protocol {

namespace {

int peer_port(const sockaddr_storage& peer) {
  if (peer.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(peer).sin_port);
  return ntohs(reinterpret_cast<const sockaddr_in6&>(peer).sin6_port);
}

}  // namespace

int tune_broker_socket(int broker_port) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int broker = -1;
  const int self = dirfd(dir);
  while (const dirent* e = readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == self) continue;
    const int s = static_cast<int>(fd);
    // getsockopt first: on anything but a socket it fails at once (ENOTSOCK), where
    // fstat could wait on a hung network file system.
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(s, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) continue;
    sockaddr_storage peer{};
    len = sizeof peer;
    // Connected (not a listener), and TCP over IPv4 or IPv6 (not a unix socket).
    if (getpeername(s, reinterpret_cast<sockaddr*>(&peer), &len) != 0) continue;
    if (peer.ss_family != AF_INET && peer.ss_family != AF_INET6) continue;
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (peer_port(peer) == broker_port) broker = s;
  }
  closedir(dir);
  return broker;
}

int url_port(std::string_view url) {
  auto scheme_end = url.find("://");
  std::string_view scheme = scheme_end == std::string_view::npos ? "" : url.substr(0, scheme_end);
  std::string_view rest = scheme_end == std::string_view::npos ? url : url.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find('/'));
  auto colon = rest.rfind(':');
  // An IPv6 literal without a port ends in ']'.
  if (colon != std::string_view::npos && rest.find(']', colon) == std::string_view::npos) {
    int port = std::atoi(std::string(rest.substr(colon + 1)).c_str());
    if (port > 0) return port;
  }
  if (scheme == "mqtts" || scheme == "ssl") return 8883;
  if (scheme == "ws") return 80;
  if (scheme == "wss") return 443;
  return 1883;
}

void quick_ack(int fd) {
  if (fd < 0) return;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

}  // namespace linewire::protocol
