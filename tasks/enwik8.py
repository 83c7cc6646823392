"""Byte-level language modelling: enwik8 (Hutter prize) and any local file (`bytes`).

enwik8 is the first 10⁸ bytes of an English Wikipedia XML dump; the standard split is the first
90M bytes for training, the next 5M for validation and the last 5M for test. A `bytes` corpus is
split in the same proportions. Files are memory-mapped, never read into Python objects; a gzip or
dictzip file (`.gz`, `.dz`) is unpacked once into the data directory and the unpacked copy mapped.

Evaluation scores every byte of a split except its first (which has no context inside the split)
exactly once, in contiguous non-overlapping windows of seq_len predictions, and reports bits per
byte = mean cross-entropy in nats / ln 2 over the scored bytes.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from seqbench.core import DiskFull, atomic_write, remove_stale_temporaries
from seqbench.tasks.base import IGNORE, TASKS, BitsPerByte, Task, check_split, split_generator

ENWIK8_URL = "http://mattmahoney.net/dc/enwik8.zip"
ENWIK8_BYTES = 100_000_000
DATA_ENV = "SEQBENCH_DATA"
SPLIT_FRACTIONS = {"train": (0.0, 0.9), "validation": (0.9, 0.95), "test": (0.95, 1.0)}


class DataError(ValueError):
    """Missing, unreadable or malformed data, with where it looked and what to do."""


def default_data_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "seqbench"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> tuple[Path, str]:
    """The data directory and where that choice came from: the option, $SEQBENCH_DATA, or the default."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), "the data_dir option"
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser(), f"${DATA_ENV}"
    return default_data_dir(), f"the default (set ${DATA_ENV} or data_dir to change it)"


def open_bytes(path: Path) -> np.memmap:
    if not path.exists():
        raise DataError(f"no such file: {path}")
    if not path.is_file():
        raise DataError(f"{path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path} is not readable (permissions)")
    if path.stat().st_size < 2:
        raise DataError(f"{path} holds {path.stat().st_size} byte(s); a corpus needs at least 2")
    return np.memmap(path, dtype=np.uint8, mode="r")


DEFAULT_SEQ_LEN = 256  # bytes per training window unless seq_len says otherwise


class ByteCorpus(Task):
    """Shared by enwik8 and `bytes`: splits, random training windows, whole-split evaluation."""

    vocab_size = 256

    metrics = ("bpc", "scored_bytes")

    def __init__(self, path: Path, seq_len: int, eval_bytes: int | None, test_seq_len: int | None = None):
        self.check_values({"seq_len": seq_len, "eval_bytes": eval_bytes, "test_seq_len": test_seq_len})
        self.path, self.data = path, open_bytes(path)
        self.seq_len, self.eval_bytes, self.test_seq_len = seq_len, eval_bytes, test_seq_len or seq_len
        self.boundaries = self.split_boundaries(len(self.data))

    def position_edges(self) -> list[int]:
        """Where the test windows' positions are bucketed for length generalisation: the training
        length, then doubling up to the test window (one bucket when they are equal)."""
        edges = [self.seq_len]
        while edges[-1] * 2 < self.test_seq_len:
            edges.append(edges[-1] * 2)
        return edges if edges[-1] == self.test_seq_len else [*edges, self.test_seq_len]

    @classmethod
    def vocab_size_of(cls, options: dict) -> int:
        return 256

    @classmethod
    def seq_len_of(cls, options: dict) -> int:
        return options.get("seq_len", DEFAULT_SEQ_LEN)

    @classmethod
    def check_values(cls, options: dict) -> None:
        """Option values only: the data may live on the cluster's file system, not here."""
        seq_len, eval_bytes = options.get("seq_len", DEFAULT_SEQ_LEN), options.get("eval_bytes")
        if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len < 1:
            raise ValueError(f"{cls.registry_name}: seq_len must be a positive integer, got {seq_len!r}")
        test_seq_len = options.get("test_seq_len")
        if test_seq_len is not None and (not isinstance(test_seq_len, int) or isinstance(test_seq_len, bool) or test_seq_len < seq_len):
            raise ValueError(f"{cls.registry_name}: test_seq_len must be an integer ≥ seq_len = {seq_len} (None: seq_len), "
                             f"got {test_seq_len!r}")
        if eval_bytes is not None and (not isinstance(eval_bytes, int) or eval_bytes < 2):
            raise ValueError(f"{cls.registry_name}: eval_bytes must be an integer ≥ 2 or None (whole split), got {eval_bytes!r}")

    def split_boundaries(self, size: int) -> dict[str, tuple[int, int]]:
        return {split: (round(size * low), round(size * high)) for split, (low, high) in SPLIT_FRACTIONS.items()}

    def split_bytes(self, split: str) -> np.memmap:
        check_split(split)
        start, stop = self.boundaries[split]
        return self.data[start:stop]

    def get_batch(self, split, batch_size, seed):
        self._check_batch_size(batch_size)
        data = self.split_bytes(split)
        if len(data) < self.seq_len + 1:
            raise DataError(f"the {split} split holds {len(data)} bytes, fewer than seq_len + 1 = {self.seq_len + 1}")
        generator = split_generator(self.registry_name, split, seed)
        starts = torch.randint(0, len(data) - self.seq_len, (batch_size,), generator=generator).tolist()
        windows = torch.from_numpy(np.stack([data[s : s + self.seq_len + 1] for s in starts]).astype(np.int64))
        return windows[:, :-1], windows[:, 1:]

    def eval_batches(self, split, batch_size) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Windows w of length L (the test split: test_seq_len): inputs data[wL : wL+L], targets
        data[wL+1 : wL+L+1]; the last is padded with −100."""
        self._check_batch_size(batch_size)
        data = self.split_bytes(split)
        if self.eval_bytes is not None:
            data = data[: self.eval_bytes]
        length = self.test_seq_len if split == "test" else self.seq_len
        window_starts = range(0, len(data) - 1, length)
        for first in range(0, len(window_starts), batch_size):
            inputs = torch.zeros(min(batch_size, len(window_starts) - first), length, dtype=torch.long)
            targets = torch.full_like(inputs, IGNORE)
            for row, start in enumerate(window_starts[first : first + batch_size]):
                window = torch.from_numpy(data[start : start + length + 1].astype(np.int64))
                inputs[row, : len(window) - 1], targets[row, : len(window) - 1] = window[:-1], window[1:]
            yield inputs, targets

    def evaluation(self):
        return BitsPerByte(self.position_edges() if self.test_seq_len > self.seq_len else [])


@functools.lru_cache(maxsize=64)
def file_identity(path: str, size: int, modified_ns: int) -> dict:
    """A file's name, size and sha256 (cached per path, size and modification time)."""
    return content_identity_now(Path(path))


def content_identity_now(path: Path) -> dict:
    """A file's name, size and sha256 read now, uncached: what a run verifies before it trains."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as source:
        while chunk := source.read(1 << 22):
            digest.update(chunk)
            size += len(chunk)
    return {"file": path.name, "bytes": size, "sha256": digest.hexdigest()}


def find_corpus(path: str, data_dir: str | None) -> Path:
    """The corpus file `path` names: itself, or a relative path under the data directory."""
    directory, source = resolve_data_dir(data_dir)
    given = Path(path).expanduser()
    found = given if given.is_absolute() else directory / given
    if not found.exists():
        where = f"{found}" if given.is_absolute() else f"{found} (relative paths are looked up in the data directory, from {source})"
        raise DataError(f"no such file: {where}")
    if not found.is_file():
        raise DataError(f"{found} is not a regular file")
    return found


@TASKS.register("bytes")
class Bytes(ByteCorpus):
    """Character-level LM on any local file, split 90/5/5 in order; bits per byte.

    Options:
        path: the corpus file (any bytes; .gz/.dz are unpacked once); a relative path is looked up in the data directory
        data_dir: where relative paths and unpacked copies live (None = $SEQBENCH_DATA or ~/.cache/seqbench)
        seq_len: training and evaluation window length
        eval_bytes: score only the first eval_bytes of a split (None = the whole split)
        test_seq_len: the test split's window length (None = seq_len); longer windows give bits per byte per position bucket (bpc/to<edge>)
    """

    def __init__(self, *, path: str, seq_len: int = DEFAULT_SEQ_LEN, eval_bytes: int | None = None, data_dir: str | None = None,
                 test_seq_len: int | None = None):
        self.given = find_corpus(path, data_dir)
        super().__init__(locate_corpus(path, data_dir), seq_len, eval_bytes, test_seq_len)

    def verify_data(self, recorded):
        """The corpus as given, re-read now (no cache: a file replaced with the same size and time is
        caught too) against the run's recorded identity — at every start and resume, so a corpus
        replaced while its sweep runs is refused, never trained on under the old file's hash."""
        if recorded is None:
            return
        now = content_identity_now(self.given)
        if (now["sha256"], now["bytes"]) != (recorded.get("sha256"), recorded.get("bytes")):
            raise DataError(f"{self.given} changed since this run was configured: recorded sha256 {recorded.get('sha256')} "
                            f"({recorded.get('bytes')} bytes), now {now['sha256']} ({now['bytes']} bytes). Restore the recorded "
                            "file, or configure new runs on this one (seqbench sweep … again: the content is part of each run id)")

    @classmethod
    def content_identity(cls, options):
        """The corpus file as given (compressed or not): its content identifies the runs, so it must be
        readable where a sweep is configured (a cluster's shared file system, on a login node)."""
        found = find_corpus(options["path"], options.get("data_dir"))
        stat = found.stat()
        return file_identity(str(found.resolve()), stat.st_size, stat.st_mtime_ns)


@TASKS.register("enwik8")
class Enwik8(ByteCorpus):
    """enwik8: 90M/5M/5M bytes, bits per byte over the whole validation or test split.

    Options:
        seq_len: training and evaluation window length
        data_dir: where enwik8 or enwik8.zip lives (None = $SEQBENCH_DATA or ~/.cache/seqbench)
        download: fetch enwik8.zip when it is missing
        eval_bytes: score only the first eval_bytes of a split (None = the whole split)
    """

    def __init__(self, *, seq_len: int = DEFAULT_SEQ_LEN, data_dir: str | None = None, download: bool = False,
                 eval_bytes: int | None = None):
        super().__init__(locate_enwik8(data_dir, download), seq_len, eval_bytes)
        if len(self.data) != ENWIK8_BYTES:
            raise DataError(
                f"{self.path} is {len(self.data):,} bytes; enwik8 is exactly {ENWIK8_BYTES:,}. "
                "Delete it and fetch it again (incomplete download or a different file)."
            )

    def split_boundaries(self, size):
        return {"train": (0, 90_000_000), "validation": (90_000_000, 95_000_000), "test": (95_000_000, 100_000_000)}


COMPRESSED_SUFFIXES = (".gz", ".dz")  # dictzip (.dz) is gzip with a seek table: gzip reads it


def locate_corpus(path: str, data_dir: str | None) -> Path:
    """The file to map: `path` itself, relative paths under the data directory, compressed files
    unpacked (once, atomically) to `unpacked/<name>-<hash of its path, size and mtime>` there."""
    directory, _ = resolve_data_dir(data_dir)
    found = find_corpus(path, data_dir)
    if found.suffix not in COMPRESSED_SUFFIXES:
        return found
    stat = found.stat()
    key = hashlib.sha256(f"{found.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    unpacked = directory / "unpacked" / f"{found.stem}-{key}"
    remove_stale_temporaries(unpacked.parent)  # an unpack killed before its rename left one
    if unpacked.exists():
        return unpacked

    def fill(out):
        with gzip.open(found, "rb") as compressed:
            while chunk := compressed.read(1 << 24):
                out.write(chunk)

    try:
        write_corpus(unpacked, fill)
    except (gzip.BadGzipFile, EOFError) as error:
        raise DataError(f"{found} is not a valid gzip/dictzip file ({error})") from error
    return unpacked


def locate_enwik8(data_dir, download: bool) -> Path:
    """The unpacked enwik8 file: found, unpacked from enwik8.zip, or (download=True) downloaded first."""
    directory, source = resolve_data_dir(data_dir)
    raw, archive = directory / "enwik8", directory / "enwik8.zip"
    if raw.exists():
        return raw
    if not archive.exists():
        if not download:
            raise DataError(
                f"enwik8 not found: looked for {raw} and {archive} (data directory from {source}). "
                f"Download {ENWIK8_URL} into {directory}, or pass the task option download=True."
            )
        _download(ENWIK8_URL, archive)
    return _unzip(archive, raw)


def write_corpus(destination: Path, fill) -> None:
    """core.atomic_write, with a full disk said in terms of the data directory."""
    try:
        atomic_write(destination, fill)
    except DiskFull as error:
        raise DataError(f"no space left on the device holding {destination.parent} while writing {destination.name}; "
                        "free some space or set $SEQBENCH_DATA to another directory") from error


def _download(url: str, destination: Path) -> None:
    from tqdm import tqdm

    def fill(out):
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {destination.name}") as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))

    try:
        write_corpus(destination, fill)
    except DataError:
        raise
    except OSError as error:
        raise DataError(f"could not download {url}: {error}. Fetch it by hand into {destination.parent}.") from error


def _unzip(archive: Path, raw: Path) -> Path:
    def fill(out):
        with zipfile.ZipFile(archive) as zipped:
            if "enwik8" not in zipped.namelist():
                raise DataError(f"{archive} holds {zipped.namelist()}, not a member named 'enwik8'")
            size = zipped.getinfo("enwik8").file_size
            if size != ENWIK8_BYTES:
                raise DataError(f"{archive} unpacks to {size:,} bytes; enwik8 is exactly {ENWIK8_BYTES:,}")
            with zipped.open("enwik8") as source:
                while chunk := source.read(1 << 24):
                    out.write(chunk)

    try:
        write_corpus(raw, fill)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as error:
        raise DataError(f"{archive} is not a valid zip archive ({error}); delete it and download it again") from error
    except PermissionError as error:
        raise DataError(f"cannot unpack {archive} into {raw.parent}: {error}") from error
    return raw
