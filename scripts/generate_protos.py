"""Generates the Python code, `.pyi` stubs and documented descriptor set from `proto/`.

python scripts/generate_protos.py          # writes clients/chatbot/v1/
python scripts/generate_protos.py --check  # fails if clients/chatbot is stale
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
THIRD_PARTY = ROOT / "third_party"
# The generated package ships in the client distribution (clients/pyproject.toml).
OUTPUT_ROOT = ROOT / "clients"
PACKAGE = Path("chatbot") / "v1"
# Served by reflection so that `grpcurl describe` shows the contract's comments.
DESCRIPTOR_SET = "descriptor_set.binpb"


def generate(output_root: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    well_known = Path(protoc.__file__).parent / "_proto"
    # The mypy-protobuf plugins sit beside this interpreter, which need not be on PATH.
    plugins = Path(sys.executable).parent
    package_dir = output_root / PACKAGE
    package_dir.mkdir(parents=True, exist_ok=True)
    arguments = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{THIRD_PARTY}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
        f"--python_out={output_root}",
        f"--grpc_python_out={output_root}",
        f"--mypy_out={output_root}",
        f"--mypy_grpc_out={output_root}",
        f"--descriptor_set_out={package_dir / DESCRIPTOR_SET}",
        "--include_source_info",
        *protos,
    ]
    if protoc.main(arguments) != 0:
        raise SystemExit("protoc failed")
    for package in (output_root / "chatbot", package_dir):
        (package / "__init__.py").write_text(
            '"""Generated from proto/chatbot/v1; do not edit."""\n'
        )
    # PEP 561: the .pyi stubs are what type checkers of downstream code read.
    (output_root / "chatbot" / "py.typed").write_text("")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args()
    if not args.check:
        shutil.rmtree(OUTPUT_ROOT / "chatbot", ignore_errors=True)
        generate(OUTPUT_ROOT)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch)
        generate(fresh)
        stale = _differences(fresh / "chatbot", OUTPUT_ROOT / "chatbot")
    if stale:
        print("generated code is stale; run `make generate`:", *stale, sep="\n  ", file=sys.stderr)
        return 1
    print("generated code is current")
    return 0


def _differences(fresh: Path, committed: Path) -> list[str]:
    def files(root: Path) -> dict[Path, bytes]:
        return {
            path.relative_to(root): path.read_bytes()
            for path in root.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        }

    expected, actual = files(fresh), files(committed)
    changed = expected.keys() | actual.keys()
    return sorted(str(name) for name in changed if expected.get(name) != actual.get(name))


if __name__ == "__main__":
    sys.exit(main())
