# Cross-compiling the device side for 64-bit ARM (phones, TVs, set-top boxes running Linux) on
# Debian 12 x86-64: GCC's aarch64-linux-gnu cross compiler and the arm64 multiarch -dev
# packages (scripts/install-deps --cross). Use with -DFEDREC_DEVICE_ONLY=ON
# (scripts/cross-aarch64 does both). Tests run under qemu-user.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# headers and libraries of the target only; programs (protoc-c) of the host
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
# pkg-config must read the arm64 .pc files, never the host's
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
# ctest runs the unit tests through the emulator (the arm64 loader is at /lib, multiarch)
find_program(FEDREC_QEMU_AARCH64 qemu-aarch64)
if(FEDREC_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${FEDREC_QEMU_AARCH64})
endif()
