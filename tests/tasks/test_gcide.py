"""GCIDE out of its Debian package (tasks/gcide.py)."""
import numpy as np
import pytest

from seqbench import tasks
from seqbench.tasks.enwik8 import DataError


def fake_deb(path, member: str, payload: bytes):
    """A Debian package as dpkg builds one: an ar archive of debian-binary, control and data.tar.xz."""
    import io
    import tarfile

    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w:xz") as tar:
        info = tarfile.TarInfo(f"./{member}")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    members = [("debian-binary", b"2.0\n"), ("control.tar.xz", b"x"), ("data.tar.xz", tar_buffer.getvalue())]
    out = b"!<arch>\n"
    for name, body in members:
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode() + body + (b"\n" if len(body) % 2 else b"")
    path.write_bytes(out)
    return path


def test_gcide_is_taken_out_of_its_debian_package(tmp_path, capsys):
    import gzip

    from seqbench.cli import main
    from seqbench.tasks.gcide import MEMBER, fetch_gcide

    text = b"Abandon \\A*ban\"don\\, v. t. To give up wholly. [1913 Webster]\n" * 200
    deb = fake_deb(tmp_path / "dict-gcide_0.48.5_all.deb", MEMBER, gzip.compress(text))
    main(["data", "gcide", "--deb", str(deb), "--data-dir", str(tmp_path / "data")])
    assert "gcide.dict.dz" in capsys.readouterr().out
    task = tasks.build("bytes", path="gcide.dict.dz", data_dir=str(tmp_path / "data"), seq_len=32)
    assert bytes(np.asarray(task.data)) == text
    assert fetch_gcide(str(tmp_path / "data")) == tmp_path / "data" / "gcide.dict.dz"  # there already: nothing fetched
    (tmp_path / "other.deb").write_bytes(b"PK not a deb")
    with pytest.raises(DataError, match="not a Debian package"):
        fetch_gcide(str(tmp_path / "elsewhere"), tmp_path / "other.deb")
    wrong = fake_deb(tmp_path / "wrong.deb", "usr/share/doc/readme", b"x")
    with pytest.raises(DataError, match="does not contain usr/share/dictd/gcide.dict.dz"):
        fetch_gcide(str(tmp_path / "elsewhere"), wrong)
