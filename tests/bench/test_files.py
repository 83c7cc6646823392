"""Defensive reads (bench/files.py): a damaged file is moved aside, said once, and read as absent —
never deleted, never a crash."""
import math

import pytest

from seqbench.bench.files import finite_json, read_json


@pytest.mark.parametrize("content, reason", [
    (b'{"status": "comp', "Unterminated string"),
    (b"\xff\xfe{}", "not UTF-8 text"),
    (b"[1, 2]", "expected a JSON object, found list"),
    (b'{"status": 3}', "field 'status' missing"),
])
def test_a_damaged_file_is_set_aside_and_read_as_absent(tmp_path, content, reason):
    path = tmp_path / "summary.json"
    path.write_bytes(content)
    with pytest.warns(UserWarning, match=reason):
        assert read_json(path, {"status": str}) is None
    [kept] = list(tmp_path.iterdir())
    assert kept.name.startswith("summary.json.corrupt-") and kept.read_bytes() == content


def test_a_good_file_and_an_absent_one(tmp_path):
    path = tmp_path / "status.json"
    assert read_json(path) is None
    path.write_text('{"state": "running", "step": 4}')
    assert read_json(path, {"state": str}) == {"state": "running", "step": 4}
    assert finite_json({"a": [1.0, {"b": 2}]}) and not finite_json({"a": [1.0, {"b": math.inf}]})
