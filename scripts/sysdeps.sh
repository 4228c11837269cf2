#!/usr/bin/env bash
# Installs the Debian packages kwsgui needs when they are missing.
# As root it runs apt-get; otherwise it prints the command and fails.
set -euo pipefail
PKGS=(portaudio19-dev espeak-ng sox libsox-fmt-mp3 opus-tools cmake
      flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
      xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0
      libxcb-render-util0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-shape0 libxcb-randr0
      libxcb-xfixes0 libgl1 libegl1 libfontconfig1 libdbus-1-3 imagemagick
      gcc-arm-linux-gnueabihf libc6-dev-armhf-cross gcc-aarch64-linux-gnu libc6-dev-arm64-cross
      qemu-user gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "kwsgui needs these system packages; run as root:" >&2
  echo "  apt-get update && $cmd" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
$cmd -qq
