#!/bin/sh
# Rewrites synth-<arch>/tokenizer.json and tokenizer_config.json with what `aegaeon model synth`
# writes today (the tiny preset's vocabulary of 1024 ids), then every hf_expected.json with the
# official Hugging Face tokenizers. Run after changing the BPE trainer, its built-in text or a
# family's layout (text/tokenizer_trainer.*, tokenizer_synthesizer.*):
#   tests/text/testdata/tokenizers/synth_tokenizers.sh build/ci/cmd/aegaeon
set -eu
aegaeon=$(realpath "${1:?usage: $0 path/to/aegaeon}")
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for arch in qwen2 llama mistral; do
  "$aegaeon" model synth --arch "$arch" --vocab 1024 --out "$tmp/$arch" >/dev/null
  mkdir -p "$here/synth-$arch"
  cp "$tmp/$arch/tokenizer.json" "$tmp/$arch/tokenizer_config.json" "$here/synth-$arch/"
done
cd "$here/../../../../parity/tokenizer"
[ -d node_modules ] || npm ci
node parity.mjs
