"""Debian's dictionary packages as text corpora for CPU-scale language modelling: GCIDE (dict-gcide)
and WordNet (dict-wn), dictd databases (`.dict.dz`, dictzip, which the `bytes` task reads as it is).

`seqbench data gcide|wordnet` takes the database out of the package — fetched with `apt-get
download`, or a `.deb` downloaded by hand (`--deb FILE`) — into the data directory. A `.deb` is an
`ar` archive whose `data.tar.*` member is a tar compressed with xz, gzip, bzip2 or zstd (newer
Debian and Ubuntu builds); every way it can be bad is one line saying what.
"""
from __future__ import annotations

import io
import lzma
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from seqbench.core import remove_stale_temporaries
from seqbench.tasks.enwik8 import DataError, resolve_data_dir, write_corpus


@dataclass(frozen=True)
class Dictionary:
    package: str
    member: str

    @property
    def file_name(self) -> str:
        return Path(self.member).name


DICTIONARIES = {
    "gcide": Dictionary("dict-gcide", "usr/share/dictd/gcide.dict.dz"),
    "wordnet": Dictionary("dict-wn", "usr/share/dictd/wn.dict.dz"),
}
AR_MAGIC, AR_HEADER = b"!<arch>\n", 60


def fetch_dictionary(name: str, data_dir: str | None = None, deb: str | Path | None = None) -> Path:
    """The database in the data directory: already there, or taken out of `deb` (downloaded when None)."""
    if name not in DICTIONARIES:
        raise DataError(f"unknown corpus {name!r}; valid: {', '.join(DICTIONARIES)}")
    dictionary = DICTIONARIES[name]
    directory, _ = resolve_data_dir(data_dir)
    remove_stale_temporaries(directory)  # a fetch killed before its rename left one
    destination = directory / dictionary.file_name
    if destination.exists():
        return destination
    with tempfile.TemporaryDirectory() as scratch:
        package = Path(deb) if deb is not None else _apt_download(dictionary.package, Path(scratch))
        payload = extract_member(package, dictionary.member)
    write_corpus(destination, lambda out: out.write(payload))
    return destination


def _apt_download(package: str, scratch: Path) -> Path:
    if shutil.which("apt-get") is None:
        raise DataError(f"apt-get is not available here; download the {package} .deb from "
                        f"https://packages.debian.org/{package} and pass it with --deb FILE")
    done = subprocess.run(["apt-get", "download", package], cwd=scratch, capture_output=True, text=True)
    debs = sorted(scratch.glob(f"{package}_*.deb"))
    if done.returncode != 0 or not debs:
        raise DataError(f"`apt-get download {package}` failed ({done.stderr.strip() or done.returncode}); "
                        "run `apt-get update` first, or fetch the .deb by hand and pass it with --deb FILE")
    return debs[0]


def ar_members(deb: Path) -> list[tuple[str, bytes]]:
    """The members of an `ar` archive, each checked against the bytes actually there."""
    if not deb.is_file():
        raise DataError(f"no such package file: {deb}")
    raw = deb.read_bytes()
    if not raw.startswith(AR_MAGIC):
        raise DataError(f"{deb} is not a Debian package (no ar header)")
    members, offset = [], len(AR_MAGIC)
    while offset < len(raw):
        header = raw[offset:offset + AR_HEADER]
        if len(header) < AR_HEADER or header[58:60] != b"`\n":
            raise DataError(f"{deb}: damaged ar member header at byte {offset} (the file is cut short or corrupt)")
        name, size_field = header[:16].decode("ascii", "replace").strip().rstrip("/"), header[48:58].decode("ascii", "replace")
        if not size_field.strip().isdigit():
            raise DataError(f"{deb}: ar member {name!r} at byte {offset} has no valid size ({size_field.strip()!r})")
        size = int(size_field)
        body = raw[offset + AR_HEADER:offset + AR_HEADER + size]
        if len(body) < size:
            raise DataError(f"{deb} is cut short: member {name!r} declares {size:,} bytes, {len(body):,} are there")
        members.append((name, body))
        offset += AR_HEADER + size + (size % 2)  # members are 2-byte aligned
    return members


def _open_tar(name: str, body: bytes) -> tarfile.TarFile:
    if name.endswith(".zst"):
        try:
            import zstandard
        except ImportError as error:
            raise DataError("this package's data is zstd-compressed; install the zstandard package "
                            "(pip install zstandard)") from error
        try:
            body = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body)).read()
        except zstandard.ZstdError as error:
            raise DataError(f"{name}: not valid zstd data ({error})") from None
    return tarfile.open(fileobj=io.BytesIO(body), mode="r:*")


def extract_member(deb: Path, member: str) -> bytes:
    """One file out of a .deb's data.tar.* member."""
    for name, body in ar_members(deb):
        if not name.startswith("data.tar"):
            continue
        try:
            with _open_tar(name, body) as tar:
                for candidate in (member, f"./{member}"):
                    try:
                        return tar.extractfile(candidate).read()
                    except KeyError:
                        continue
        except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, OSError) as error:
            raise DataError(f"{deb}: its {name} cannot be read ({type(error).__name__}: {error})") from None
        raise DataError(f"{deb} does not contain {member}")
    raise DataError(f"{deb} has no data.tar member")
