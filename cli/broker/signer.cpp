// Signs requests with an Ed25519 key; `linewire keygen`: see signer.hpp.
#include "cli/broker/signer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "auth/base64.hpp"
#include "auth/key_file.hpp"
#include "protocol/names.hpp"
#include "protocol/signed_request.hpp"

namespace linewire::cli {

using nlohmann::json;

namespace {

std::runtime_error key_error(const std::string& file, const std::string& why) {
  return std::runtime_error("key " + file + ": " + why);
}

std::string read_private_key(const std::string& file) {
  std::string error;
  std::string text = auth::read_key_file(file, auth::KeyFile::private_key, error);
  if (!error.empty()) throw key_error(file, error);
  return text;
}

void write_new(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0)
    throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno) +
                             (errno == EEXIST ? " (it is never overwritten)" : ""));
  // The umask may have narrowed the mode; make it exact.
  bool ok = ::fchmod(fd, mode) == 0;
  std::size_t done = 0;
  while (ok && done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  ok = ::fsync(fd) == 0 && ok;
  const int saved = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    throw std::runtime_error("cannot write " + path + ": " + std::strerror(saved));
  }
}

}  // namespace

std::string default_key_name(const std::string& file) {
  return std::filesystem::path(file).stem().string();
}

std::string new_nonce() {
  std::string n = auth::base64_encode(auth::random_bytes(16));
  while (!n.empty() && n.back() == '=') n.pop_back();
  for (char& c : n) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return n;
}

Signer Signer::load(const std::string& file, std::string name) {
  if (name.empty()) name = default_key_name(file);
  if (!protocol::valid_name(name))
    throw std::runtime_error("key name '" + name +
                             "' is not a valid name ([A-Za-z0-9][A-Za-z0-9_.-]{0,63}); "
                             "give one with --key-name");
  const std::string pem = read_private_key(file);
  try {
    return Signer(auth::PrivateKey::from_pem(pem), std::move(name));
  } catch (const std::runtime_error& e) {
    throw key_error(file, e.what());
  }
}

std::string Signer::envelope(const std::string& topic, std::string_view fields) const {
  json inner = json::parse(fields.begin(), fields.end(), nullptr, false);
  if (!inner.is_object()) inner = json::object();
  inner["ts"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  inner["nonce"] = new_nonce();
  // Bytes that are not UTF-8 (a binary stdin line) cannot be a JSON string: replaced.
  const std::string text = inner.dump(-1, ' ', false, json::error_handler_t::replace);
  return protocol::make_envelope(text, name_, key_.sign(protocol::signed_message(topic, text)));
}

std::string keygen(const std::string& file) {
  const auto key = auth::PrivateKey::generate();
  const std::string name = default_key_name(file);
  const std::string line = auth::openssh_line(key.public_bytes(), name) + "\n";
  write_new(file, key.pem(), 0600);
  try {
    write_new(file + ".pub", line, 0644);
  } catch (...) {
    ::unlink(file.c_str());
    throw;
  }
  return line;
}

}  // namespace linewire::cli
