# yaml-cpp for cross builds. Debian's libyaml-cpp-dev is not co-installable across
# architectures (installing libyaml-cpp-dev:arm64 removes the amd64 one, and with it
# the native build), so cross/install-deps.sh installs only the target's runtime
# library (libyaml-cpp0.7:ARCH), and this file stands in for the -dev package's CMake
# config: the headers are the host's (/usr/include/yaml-cpp, the same on every
# architecture), the library the target's.
set(_lw_yaml_lib /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/libyaml-cpp.so.0.7)
if(NOT EXISTS ${_lw_yaml_lib} OR NOT EXISTS /usr/include/yaml-cpp/yaml.h)
  set(yaml-cpp_FOUND FALSE)
  set(yaml-cpp_NOT_FOUND_MESSAGE
    "needs ${_lw_yaml_lib} (libyaml-cpp0.7 for the target) and /usr/include/yaml-cpp (libyaml-cpp-dev)")
  return()
endif()
if(NOT TARGET yaml-cpp)
  add_library(yaml-cpp SHARED IMPORTED)
  set_target_properties(yaml-cpp PROPERTIES
    IMPORTED_LOCATION ${_lw_yaml_lib}
    INTERFACE_INCLUDE_DIRECTORIES /usr/include)
endif()
set(yaml-cpp_VERSION 0.7.0)
