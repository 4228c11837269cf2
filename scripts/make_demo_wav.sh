#!/usr/bin/env bash
# Rebuilds assets/demo.wav: espeak-ng saying a few keywords, 16 kHz mono 16-bit, with pauses.
set -euo pipefail
out=${1:-assets/demo.wav}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
sox -n -r 16000 -c 1 -b 16 "$tmp/gap.wav" trim 0.0 0.6
parts=("$tmp/gap.wav")
i=0
for w in seven yes stop left marvin; do
  espeak-ng -v en-us -s 140 -w "$tmp/raw$i.wav" "$w"
  sox "$tmp/raw$i.wav" -r 16000 -c 1 -b 16 "$tmp/w$i.wav" norm -3
  parts+=("$tmp/w$i.wav" "$tmp/gap.wav")
  i=$((i+1))
done
sox "${parts[@]}" "$out"
echo "wrote $out ($(soxi -D "$out") s)"
