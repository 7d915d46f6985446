#include "auth/key_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace linewire::auth {

std::string read_key_file(const std::string& path, KeyFile kind, std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    error = std::strerror(errno);
    return {};
  }
  std::string text;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    error = "not a regular file";
  } else if (kind == KeyFile::private_key && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    error = std::string("permissions ") + mode + " are too open; chmod 600 it";
  } else if (st.st_size > static_cast<off_t>(kMaxKeyFile)) {
    error = "too big for a key file";
  } else {
    char buffer[4096];
    ssize_t n = 0;
    while ((n = ::read(fd, buffer, sizeof buffer)) > 0 && text.size() <= kMaxKeyFile)
      text.append(buffer, static_cast<std::size_t>(n));
    if (n < 0) error = std::strerror(errno);
    if (text.size() > kMaxKeyFile) error = "too big for a key file";
  }
  ::close(fd);
  if (!error.empty()) text.clear();
  return text;
}

}  // namespace linewire::auth
