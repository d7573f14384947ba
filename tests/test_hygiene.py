"""fasthmr_lib.hygiene reports dirty notebooks and passes clean ones."""

import json

import nbformat

from fasthmr_lib import hygiene


def _write(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nbformat.write(nb, str(path))
    return path


def _params(src):
    c = nbformat.v4.new_code_cell(src)
    c.metadata["tags"] = ["parameters"]
    return c


def test_clean_notebook_has_no_problems(tmp_path):
    p = _write(tmp_path / "00_ok.ipynb", [nbformat.v4.new_markdown_cell("# ok"), _params("a = 1\nb = 'x'"),
                                          nbformat.v4.new_code_cell("print(a)")])  # fmt: skip
    assert hygiene.check_notebook(p) == []
    assert hygiene.main([str(tmp_path)]) == 0


def test_bad_notebook_is_reported(tmp_path):
    with_out = nbformat.v4.new_code_cell("print(1)")
    with_out.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    with_out.execution_count = 3
    cells = [_params("a = 1\nb = len('x')"), with_out, nbformat.v4.new_code_cell("def f():\n    return 1")]
    p = _write(tmp_path / "01_bad.ipynb", cells)
    probs = hygiene.check_notebook(p)
    assert any("non-literal" in x for x in probs)
    assert any("cell 1" in x and "outputs" in x for x in probs)
    assert any("cell 2" in x and "defines a function" in x for x in probs)
    assert hygiene.main([str(tmp_path)]) == 1


def test_parameters_cell_count_and_empty_dir(tmp_path):
    p = _write(tmp_path / "02_two.ipynb", [_params("a = 1"), _params("b = 2")])
    assert any("exactly one cell tagged 'parameters', found 2" in x for x in hygiene.check_notebook(p))
    p = _write(tmp_path / "03_none.ipynb", [nbformat.v4.new_code_cell("x = 1")])
    assert any("found 0" in x for x in hygiene.check_notebook(p))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert hygiene.check_dir(empty) and "no notebooks" in hygiene.check_dir(empty)[0]


def test_cell_ids_are_required_and_unique(tmp_path):
    p = _write(tmp_path / "04_ids.ipynb", [_params("a = 1"), nbformat.v4.new_code_cell("print(a)")])
    nb = nbformat.read(str(p), as_version=4)
    assert nb.nbformat_minor >= 5 and hygiene.check_notebook(p) == []
    d = json.loads(p.read_text())
    del d["cells"][1]["id"]
    p.write_text(json.dumps(d))
    assert any("cells [1] have no 'id'" in x for x in hygiene.check_notebook(p))
    d["cells"][1]["id"] = d["cells"][0]["id"]
    p.write_text(json.dumps(d))
    assert any("used more than once" in x for x in hygiene.check_notebook(p))
