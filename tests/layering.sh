#!/bin/sh
# The build gives each layer only the include directories it may use (engine/CMakeLists.txt);
# an include by relative path would step around that. None may exist.
cd "$(dirname "$0")/.." || exit 2
if grep -rnE '#[[:space:]]*include[[:space:]]*"[^"]*\.\./' engine tls dtls; then
    echo "layering: the includes above step around the layers' include directories" >&2
    exit 1
fi
echo "layering: no include by relative path in engine/, tls/, dtls/"
