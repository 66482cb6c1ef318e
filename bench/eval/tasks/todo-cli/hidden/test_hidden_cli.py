import io
import json

import pytest

from todo.cli import main


def run(path, *argv):
    out, err = io.StringIO(), io.StringIO()
    status = main(["--file", str(path), *argv], out=out, err=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def path(tmp_path):
    path = tmp_path / "todo.json"
    for title in ("Buy milk", "Call mum", "Water plants"):
        run(path, "add", title)
    return path


def test_done(path):
    assert run(path, "done", "2") == (0, "Done: Call mum\n", "")
    assert run(path, "list") == (0, "[ ] 1 Buy milk\n[x] 2 Call mum\n[ ] 3 Water plants\n", "")
    assert [item["done"] for item in json.loads(path.read_text())] == [False, True, False]


def test_done_twice_is_fine(path):
    run(path, "done", "1")
    assert run(path, "done", "1") == (0, "Done: Buy milk\n", "")


def test_done_unknown_id(path):
    status, out, err = run(path, "done", "9")
    assert status == 1
    assert out == ""
    assert err == "No item 9\n"
    assert run(path, "list")[1] == "[ ] 1 Buy milk\n[ ] 2 Call mum\n[ ] 3 Water plants\n"


def test_list_pending(path):
    run(path, "done", "1")
    run(path, "done", "3")
    assert run(path, "list", "--pending") == (0, "[ ] 2 Call mum\n", "")


def test_list_pending_when_all_done(path):
    for item_id in ("1", "2", "3"):
        run(path, "done", item_id)
    assert run(path, "list", "--pending") == (0, "", "")


def test_plain_list_still_lists_everything(path):
    run(path, "done", "2")
    assert run(path, "list")[1].count("\n") == 3


def test_add_still_works(tmp_path):
    path = tmp_path / "todo.json"
    assert run(path, "add", "One") == (0, "Added 1: One\n", "")

