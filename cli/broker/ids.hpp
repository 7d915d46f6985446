// Random names the client makes up: run ids, its MQTT client id, correlation data.
#pragma once

#include <cstddef>
#include <string>

namespace linewire::cli {

// A fresh run id that sorts by time and reads well in `runs`: 20261122-230000-3fa9c1.
std::string new_run_id();
// A random lower-case hex string of `n` characters (client ids, correlation data).
std::string random_hex(std::size_t n);

}  // namespace linewire::cli
