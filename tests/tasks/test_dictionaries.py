"""Dictionary corpora out of their Debian packages (tasks/dictionaries.py): xz and zstd data members,
and every way a package can be bad said in one line."""
import numpy as np
import pytest

from seqbench import tasks
from seqbench.tasks.enwik8 import DataError


def fake_deb(path, member: str, payload: bytes, compression: str = "xz"):
    """A Debian package as dpkg builds one: an ar archive of debian-binary, control and data.tar.xz
    (or data.tar.zst, as newer Debian and Ubuntu builds make it)."""
    import io
    import tarfile

    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w:xz" if compression == "xz" else "w") as tar:
        info = tarfile.TarInfo(f"./{member}")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    data = tar_buffer.getvalue()
    if compression == "zst":
        import zstandard

        data = zstandard.ZstdCompressor().compress(data)
    members = [("debian-binary", b"2.0\n"), ("control.tar.xz", b"x"), (f"data.tar.{compression}", data)]
    out = b"!<arch>\n"
    for name, body in members:
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode() + body + (b"\n" if len(body) % 2 else b"")
    path.write_bytes(out)
    return path


def test_gcide_is_taken_out_of_its_debian_package(tmp_path, capsys):
    import gzip

    from seqbench.cli import main
    from seqbench.tasks.dictionaries import DICTIONARIES, fetch_dictionary

    MEMBER = DICTIONARIES["gcide"].member
    fetch_gcide = lambda *args: fetch_dictionary("gcide", *args)  # noqa: E731

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


@pytest.mark.parametrize("compression", ["xz", "zst"])
def test_wordnet_comes_out_of_its_package_whatever_compresses_the_data(tmp_path, compression, capsys):
    import gzip
    import os
    import stat

    from seqbench.cli import main
    from seqbench.tasks.dictionaries import DICTIONARIES

    text = b"entity\n    n 1: that which is perceived or known or inferred\n" * 100
    deb = fake_deb(tmp_path / "dict-wn_3.0_all.deb", DICTIONARIES["wordnet"].member, gzip.compress(text), compression)
    (tmp_path / "data").mkdir()
    killed = tmp_path / "data" / ".wn.dict.dz.abc123.tmp"  # a fetch killed at the rename left it
    killed.write_bytes(b"x" * 1000)
    os.utime(killed, (0, 0))
    main(["data", "wordnet", "--deb", str(deb), "--data-dir", str(tmp_path / "data")])
    assert not killed.exists()
    path = tmp_path / "data" / "wn.dict.dz"
    assert 'path = "wn.dict.dz"' in capsys.readouterr().out
    assert gzip.decompress(path.read_bytes()) == text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644  # readable in a shared data directory
    assert tasks.build("bytes", path=str(path), data_dir=str(tmp_path / "data"), seq_len=16).vocab_size == 256  # unpacked there, not in ~/.cache


def test_a_damaged_package_is_one_line_saying_what(tmp_path):
    import gzip

    from seqbench.cli import main
    from seqbench.tasks.dictionaries import DICTIONARIES

    good = fake_deb(tmp_path / "good.deb", DICTIONARIES["gcide"].member, gzip.compress(b"x" * 5000)).read_bytes()
    cut = tmp_path / "cut.deb"
    cut.write_bytes(good[: len(good) // 2])
    bad_header = tmp_path / "header.deb"
    bad_header.write_bytes(good[:8 + 48] + b"12ab" + good[8 + 52:])
    for deb, message in ((cut, "is cut short: member 'data.tar.xz' declares"), (bad_header, "has no valid size ('12ab")):
        with pytest.raises(SystemExit) as stopped:
            main(["data", "gcide", "--deb", str(deb), "--data-dir", str(tmp_path / "data")])
        assert message in str(stopped.value) and "\n" not in str(stopped.value)
    assert not list((tmp_path / "data").glob(".*")) if (tmp_path / "data").exists() else True  # no temporaries left
