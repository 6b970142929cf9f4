#!/usr/bin/env bash
# Debian packages the test suite needs beyond Python: the native core's build (CMake, a C++17 compiler,
# nlohmann/json, OpenCV, GoogleTest, zlib), its fuzz targets and sanitizer run (clang 14 + libFuzzer),
# and the Android demo's host tests (a JDK with jni.h, aapt2). Installs only what is missing; runs
# apt-get as root, or through sudo.
set -euo pipefail
packages=(cmake g++ binutils pkg-config nlohmann-json3-dev libopencv-dev libavformat-dev libavcodec-dev libswscale-dev
          libavutil-dev libgtest-dev libgmock-dev zlib1g-dev
          clang-14 libclang-rt-14-dev openjdk-17-jdk-headless aapt)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all ${#packages[@]} present"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "system packages: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
