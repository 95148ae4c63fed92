"""A protoc plugin (stdin: CodeGeneratorRequest, stdout: CodeGeneratorResponse)
that produces grpcio's *_pb2_grpc.py service stubs.

grpcio ships its gRPC Python generator only compiled into grpcio-tools' bundled
protoc (`python -m grpc_tools.protoc --grpc_python_out`), not as a plugin
executable, and buf can run protoc's built-ins (`protoc_builtin`) but not that
one. So this wrapper hands buf's request to grpc_tools.protoc as a descriptor
set, and returns what it writes. Used from buf.gen.yaml; needs grpcio-tools.
"""

import os
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2


def main() -> int:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = plugin_pb2.CodeGeneratorResponse()
    response.supported_features = plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    with tempfile.TemporaryDirectory() as tmp:
        descriptors = os.path.join(tmp, "descriptors.binpb")
        with open(descriptors, "wb") as f:
            f.write(descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString())
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        option = f"--grpc_python_out={request.parameter}:{out}" if request.parameter else f"--grpc_python_out={out}"
        result = subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"--descriptor_set_in={descriptors}", option,
             *request.file_to_generate],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            response.error = result.stderr.strip() or f"grpc_tools.protoc exited with {result.returncode}"
        else:
            for root, _, names in os.walk(out):
                for name in sorted(names):
                    path = os.path.join(root, name)
                    with open(path, encoding="utf-8") as f:
                        response.file.add(name=os.path.relpath(path, out), content=f.read())
    sys.stdout.buffer.write(response.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())
