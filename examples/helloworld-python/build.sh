#!/bin/sh
# The Python modules of the protos this service uses, into ./gen (protoc's own --python_out).
# MICRO_PROTO: the folder holding micro/ (default: this repository's proto/).
set -e
here=$(cd "$(dirname "$0")" && pwd)
micro_proto=${MICRO_PROTO:-$here/../../proto}
rm -rf "$here/gen" && mkdir -p "$here/gen"
protoc --proto_path="$micro_proto" --python_out="$here/gen" \
  "$micro_proto/micro/registry/v1/registry.proto" "$micro_proto/micro/auth/v1/auth.proto"
protoc --proto_path="$here/../helloworld/proto" --python_out="$here/gen" \
  "$here/../helloworld/proto/helloworld/v1/helloworld.proto"
for d in "$here/gen/micro" "$here/gen/micro/registry" "$here/gen/micro/registry/v1" \
         "$here/gen/micro/auth" "$here/gen/micro/auth/v1" "$here/gen/helloworld" \
         "$here/gen/helloworld/v1"; do
  touch "$d/__init__.py"
done
