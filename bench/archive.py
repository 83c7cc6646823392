"""Finished runs in one file that outlives the machine they ran on.

A results root lives on one machine; a study that takes longer than a machine is lent (a session, a
cluster allocation) loses every finished run with it unless the runs travel. `archive` packs the
finished runs of some sweeps — config, status, summary, metrics and rows; never checkpoints, leases
or job records, which belong to the machine — into a tar.gz with a manifest of every file's sha256,
byte-identical for identical runs (sorted members, zeroed times and owners). `restore` unpacks it
into a results root, where a launch of the same sweep skips those runs as finished. It never
overwrites: a run already in the root must be byte-identical, or the restore refuses and names it,
so two different runs of one id are never mixed; a file whose hash disagrees with the manifest, or a
member outside the layout, fails the whole restore before anything is written.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib
from pathlib import Path

from seqbench.bench.files import read_json
from seqbench.bench.store import RUN_ID_PATTERN, Store, StoreError, check_run_id, check_sweep_name
from seqbench.core import atomic_write_bytes

RUN_FILES = ("config.json", "status.json", "summary.json", "metrics.jsonl", "rows.jsonl")
MANIFEST = "manifest.json"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def archive(sweeps: list[str], out: str | Path, root=None) -> dict:
    """Pack the finished runs of `sweeps` into `out`; returns the manifest (sweep → run ids, file → sha256)."""
    store = Store(root)
    members: dict[str, bytes] = {}
    listed: dict[str, list[str]] = {}
    for name in sweeps:
        sweep = store.sweep(name).require()
        if sweep.listing_path.is_file():
            listing = read_json(sweep.listing_path) or {}
            members[f"{name}/sweep.json"] = json.dumps({"name": name, "run_ids": listing.get("run_ids", []),
                                                        "executor": listing.get("executor", {}),
                                                        "commands": listing.get("commands", [])}, indent=1, sort_keys=True).encode()
        listed[name] = []
        for run_id in sweep.run_ids():
            run = sweep.run(run_id)
            if not run.is_finished():
                continue  # an unfinished run is re-run where the archive is restored; its checkpoint stays here
            listed[name].append(run_id)
            for file in RUN_FILES:
                if (run.path / file).is_file():
                    members[f"{name}/{run_id}/{file}"] = (run.path / file).read_bytes()
    manifest = {"sweeps": listed, "files": {path: _sha256(data) for path, data in sorted(members.items())}}
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed, tarfile.open(fileobj=compressed, mode="w") as tar:
        _add(tar, MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
        for path, data in sorted(members.items()):
            _add(tar, path, data)
    atomic_write_bytes(Path(out), buffer.getvalue())
    return manifest


def _checked_member(path: str) -> tuple[str, str | None, str]:
    """(sweep, run id or None, file name) of an archive member, or a StoreError for anything else."""
    parts = path.split("/")
    if len(parts) == 2 and parts[1] == "sweep.json":
        return check_sweep_name(parts[0]), None, parts[1]
    if len(parts) == 3 and RUN_ID_PATTERN.fullmatch(parts[1]) and parts[2] in RUN_FILES:
        return check_sweep_name(parts[0]), check_run_id(parts[1]), parts[2]
    raise StoreError(f"archive member {path!r} is not <sweep>/sweep.json or <sweep>/<run id>/<{'|'.join(RUN_FILES)}>")


MAX_MEMBER_BYTES = 256 * 2**20  # a run's files are kilobytes to a few megabytes; a bigger member is not one of ours


def read_archive(path: str | Path) -> tuple[dict, dict[str, bytes]]:
    """(manifest, member path → bytes), every member checked before anything is written: read one at
    a time from the stream, its size bounded by its header before it is decompressed, its name in the
    layout, its JSON UTF-8 and its sha256 the manifest's. A damaged archive is one StoreError naming it."""
    contents: dict[str, bytes] = {}
    try:
        with tarfile.open(Path(path), mode="r|gz") as tar:
            for member in tar:
                if not member.isfile():
                    raise StoreError(f"{path}: member {member.name!r} is not a plain file")
                if member.name != MANIFEST:
                    _checked_member(member.name)
                if member.size > MAX_MEMBER_BYTES:
                    raise StoreError(f"{path}: member {member.name!r} holds {member.size:,} bytes, more than any run file "
                                     f"({MAX_MEMBER_BYTES:,} at most); not an archive of runs")
                contents[member.name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:  # truncated, bit-flipped, not gzip, not tar
        raise StoreError(f"{path}: not a readable tar.gz archive ({type(error).__name__}: {error}); "
                         "it was damaged or is not an archive written by `seqbench archive`") from None
    if MANIFEST not in contents:
        raise StoreError(f"{path}: no {MANIFEST}; not an archive written by `seqbench archive`")
    try:
        manifest = json.loads(contents.pop(MANIFEST).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise StoreError(f"{path}: its {MANIFEST} is not JSON text ({error})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict) or not isinstance(manifest.get("sweeps", {}), dict):
        raise StoreError(f"{path}: its {MANIFEST} is not an object with a 'files' object (file → sha256) and 'sweeps'")
    expected = manifest["files"]
    if set(expected) != set(contents):
        raise StoreError(f"{path}: members and manifest differ (missing: {sorted(set(expected) - set(contents))[:3]}, "
                         f"unlisted: {sorted(set(contents) - set(expected))[:3]})")
    for name, data in contents.items():
        if _sha256(data) != expected[name]:
            raise StoreError(f"{path}: {name} does not match its sha256 in the manifest (a damaged or edited archive)")
        try:
            text = data.decode("utf-8")
            if name.endswith(".json") and not isinstance(json.loads(text), dict):
                raise ValueError("not a JSON object")
        except (UnicodeDecodeError, ValueError) as error:
            raise StoreError(f"{path}: {name} is not valid UTF-8 JSON ({error}); a run file must be") from None
    return manifest, contents


def restore(path: str | Path, root=None) -> dict[str, int]:
    """Unpack an archive into `root`; returns sweep → runs added (runs already there, identical, are skipped)."""
    manifest, contents = read_archive(path)
    store = Store(root)
    conflicts, runs = [], {}
    for name, data in contents.items():
        sweep, run_id, file = _checked_member(name)
        if run_id is not None:
            runs.setdefault((sweep, run_id), {})[file] = data
    for (sweep, run_id), files in runs.items():
        run = store.run(sweep, run_id)
        if run.path.exists() and any(not (run.path / f).is_file() or (run.path / f).read_bytes() != d for f, d in files.items()):
            state = (run.read_summary() or {}).get("status") or (run.read_status() or {}).get("state", "unfinished")
            conflicts.append(f"{sweep}/{run_id} ({state} here)")
    if conflicts:
        raise StoreError(f"{len(conflicts)} run(s) of {path} already exist under {store.root} with other contents: "
                         f"{', '.join(conflicts[:5])}{' …' if len(conflicts) > 5 else ''}; restore into an empty root, or "
                         "move those runs aside")
    added: dict[str, int] = {sweep: 0 for sweep in manifest.get("sweeps", {})}
    for (sweep, run_id), files in sorted(runs.items()):
        run = store.run(sweep, run_id)
        if run.path.exists():
            continue
        for file in sorted(files, key=lambda f: f == "summary.json"):  # the summary last: it marks the run finished
            atomic_write_bytes(run.path / file, files[file])
        added[sweep] = added.get(sweep, 0) + 1
    for sweep in manifest.get("sweeps", {}):
        listing = contents.get(f"{sweep}/sweep.json")
        if listing is not None:
            recorded = json.loads(listing)
            target = store.sweep(sweep)
            here = target.read_listing() if target.listing_path.is_file() else None
            executor = here.get("executor", {}) if here else recorded.get("executor", {})  # never replace this root's own
            for command in recorded.get("commands", []) or [None]:
                target.write_listing(recorded.get("run_ids", []), executor, command)
    return added

