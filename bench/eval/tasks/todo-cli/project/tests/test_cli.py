import io

from todo.cli import main


def run(path, *argv):
    out, err = io.StringIO(), io.StringIO()
    status = main(["--file", str(path), *argv], out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_add_and_list(tmp_path):
    path = tmp_path / "todo.json"
    assert run(path, "add", "Buy milk") == (0, "Added 1: Buy milk\n", "")
    assert run(path, "add", "Call mum") == (0, "Added 2: Call mum\n", "")
    assert run(path, "list") == (0, "[ ] 1 Buy milk\n[ ] 2 Call mum\n", "")


def test_empty_list(tmp_path):
    assert run(tmp_path / "todo.json", "list") == (0, "", "")
