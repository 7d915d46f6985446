# Cross-compiling linewire for arm64 (aarch64-linux-gnu) on Debian bookworm against Debian multiarch
# libraries (dpkg --add-architecture arm64; cross/install-deps.sh arm64 installs them).
# Used by cross/build.sh arm64; by hand:
#   cmake -S . -B build-arm64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cross/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Multiarch: the target's libraries and CMake packages live in /usr/lib/aarch64-linux-gnu
# and are found through this; shared headers stay in /usr/include.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
# Boost is used header-only: its headers are the same for every architecture, and its
# CMake package (arch-specific, in the host's multiarch folder) is not needed.
set(Boost_NO_BOOST_CMAKE ON)
# yaml-cpp: see cross/yaml-cpp/yaml-cpp-config.cmake.
set(yaml-cpp_DIR ${CMAKE_CURRENT_LIST_DIR}/yaml-cpp)
# Test programs run under qemu-user. Without -L: the binary's loader is the multiarch
# one (libc6:arm64), and mixing in /usr/aarch64-linux-gnu's glibc hangs after fork() (DESIGN.md).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
# The Debian architecture of the package cpack builds (packaging/package.cmake).
set(LINEWIRE_DEB_ARCH arm64 CACHE STRING "Debian architecture of the package")
