"""GCIDE, the CPU-scale stand-in for enwik8: real English text from Debian's `dict-gcide` package.

`seqbench data gcide` fetches the package with `apt-get download` (no installation, no root
needed for the download itself) and places its `usr/share/dictd/gcide.dict.dz` (dictzip: gzip
with a seek table; ~13.5 MB packed, ~40 MB of dictionary text with markup) in the data
directory, where the `bytes` task finds it as `path = "gcide.dict.dz"`. Without apt, download
the .deb from packages.debian.org by hand and pass it with `--deb`.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from seqbench.tasks.enwik8 import DataError, resolve_data_dir, write_corpus

PACKAGE = "dict-gcide"
MEMBER = "usr/share/dictd/gcide.dict.dz"
FILE_NAME = "gcide.dict.dz"


def fetch_gcide(data_dir: str | None = None, deb: str | Path | None = None) -> Path:
    """The corpus in the data directory: already there, or taken out of `deb` (downloaded when None)."""
    directory, _ = resolve_data_dir(data_dir)
    destination = directory / FILE_NAME
    if destination.exists():
        return destination
    with tempfile.TemporaryDirectory() as scratch:
        package = Path(deb) if deb is not None else _apt_download(Path(scratch))
        payload = extract_member(package, MEMBER)
    write_corpus(destination, lambda out: out.write(payload))
    return destination


def _apt_download(scratch: Path) -> Path:
    if shutil.which("apt-get") is None:
        raise DataError(f"apt-get is not available here; download the {PACKAGE} .deb from "
                        f"https://packages.debian.org/{PACKAGE} and run `seqbench data gcide --deb FILE`")
    done = subprocess.run(["apt-get", "download", PACKAGE], cwd=scratch, capture_output=True, text=True)
    debs = sorted(scratch.glob(f"{PACKAGE}_*.deb"))
    if done.returncode != 0 or not debs:
        raise DataError(f"`apt-get download {PACKAGE}` failed ({done.stderr.strip() or done.returncode}); "
                        "run `apt-get update` first, or fetch the .deb by hand and pass it with --deb FILE")
    return debs[0]


def extract_member(deb: Path, member: str) -> bytes:
    """One file out of a .deb: an `ar` archive whose data.tar.* member is a (compressed) tar."""
    if not deb.is_file():
        raise DataError(f"no such package file: {deb}")
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise DataError(f"{deb} is not a Debian package (no ar header)")
    offset = 8
    while offset + 60 <= len(raw):
        header = raw[offset : offset + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
        body = raw[offset + 60 : offset + 60 + size]
        offset += 60 + size + (size % 2)  # members are 2-byte aligned
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
                for candidate in (member, f"./{member}"):
                    try:
                        return tar.extractfile(candidate).read()
                    except KeyError:
                        continue
            raise DataError(f"{deb} does not contain {member}")
    raise DataError(f"{deb} has no data.tar member")
