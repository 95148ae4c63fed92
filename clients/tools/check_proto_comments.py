"""Fails when a service, RPC, message, field, enum or enum value of proto/ has no
leading comment. Reads the image that `buf build -o image.binpb` writes (with
source info) and names each undocumented element with its file and line.

Usage: buf build -o /tmp/image.binpb && python3 check_proto_comments.py /tmp/image.binpb
"""

import sys

from google.protobuf import descriptor_pb2

# Paths into FileDescriptorProto / DescriptorProto / ... (descriptor.proto field numbers).
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE = 4, 5, 6
MSG_FIELD, MSG_NESTED, MSG_ENUM = 2, 3, 4
ENUM_VALUE = 2
SERVICE_METHOD = 2


def main(path: str) -> int:
    image = descriptor_pb2.FileDescriptorSet.FromString(open(path, "rb").read())
    missing: list[str] = []
    for file in image.file:
        if file.name.startswith("google/"):
            continue
        comments = {
            tuple(loc.path): (loc.leading_comments.strip(), loc.span[0] + 1)
            for loc in file.source_code_info.location
        }

        def need(path: tuple[int, ...], what: str) -> None:
            text, line = comments.get(path, ("", 0))
            if not text:
                missing.append(f"{file.name}:{line}: {what} has no comment")

        def message(msg: descriptor_pb2.DescriptorProto, path: tuple[int, ...], prefix: str) -> None:
            name = f"{prefix}{msg.name}"
            if msg.options.map_entry:
                return  # synthesized for map<K, V> fields
            need(path, f"message {name}")
            for i, field in enumerate(msg.field):
                need(path + (MSG_FIELD, i), f"field {name}.{field.name}")
            for i, nested in enumerate(msg.nested_type):
                message(nested, path + (MSG_NESTED, i), f"{name}.")
            for i, enum in enumerate(msg.enum_type):
                enumeration(enum, path + (MSG_ENUM, i), f"{name}.")

        def enumeration(enum: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], prefix: str) -> None:
            name = f"{prefix}{enum.name}"
            need(path, f"enum {name}")
            for i, value in enumerate(enum.value):
                need(path + (ENUM_VALUE, i), f"enum value {name}.{value.name}")

        for i, msg in enumerate(file.message_type):
            message(msg, (FILE_MESSAGE, i), f"{file.package}.")
        for i, enum in enumerate(file.enum_type):
            enumeration(enum, (FILE_ENUM, i), f"{file.package}.")
        for i, service in enumerate(file.service):
            name = f"{file.package}.{service.name}"
            need((FILE_SERVICE, i), f"service {name}")
            for j, method in enumerate(service.method):
                need((FILE_SERVICE, i, SERVICE_METHOD, j), f"rpc {name}.{method.name}")
    for line in missing:
        print(line, file=sys.stderr)
    checked = sum(1 for f in image.file if not f.name.startswith("google/"))
    print(f"proto comments: {checked} files checked, {len(missing)} undocumented elements", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
