// Ctrl-C and friends. The handlers only count signals (async-signal-safe); the client's
// event loop picks them up within a tick (Connection::next), so no thread blocks in
// sigwait and nothing but an atomic is touched from a handler.
#pragma once

#include <optional>

namespace linewire::cli {

// SIGINT, SIGTERM, SIGHUP are counted; SIGPIPE is ignored (a closed stdout is
// noticed at the write instead).
void install_interrupt_handlers();

// The next signal that arrived and was not taken yet (SIGINT first).
std::optional<int> take_interrupt();

}  // namespace linewire::cli
