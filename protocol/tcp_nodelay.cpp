#include "protocol/tcp_nodelay.hpp"

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdlib>

namespace linewire::protocol {

int set_tcp_nodelay_on_connected_sockets() {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return 0;
  int set = 0;
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
    if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0) ++set;
  }
  closedir(dir);
  return set;
}

}  // namespace linewire::protocol
