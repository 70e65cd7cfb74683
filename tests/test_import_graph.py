"""tools/import_graph.py: the first-party packages have no import cycle and import no private names across modules."""

import importlib.util
import subprocess
import sys

from conftest import ROOT

spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
import_graph = importlib.util.module_from_spec(spec)
spec.loader.exec_module(import_graph)


def test_packages_have_no_import_cycle():
    out = subprocess.run(
        [sys.executable, "tools/import_graph.py"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "no cycle" in out.stderr
    assert "elements.partition.cli -> " in out.stdout  # the graph itself is printed


def test_a_cycle_is_found_and_fails(tmp_path):
    pkg = tmp_path / "elements"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from elements.sub import b\n")  # re-exporting a submodule is no cycle
    (pkg / "a.py").write_text("def f():\n    from elements.sub.b import g  # lazy imports count\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from .. import a\nfrom elements.c import _hidden\n")
    (pkg / "c.py").write_text("_hidden = 1\n")
    modules = import_graph.module_files(tmp_path, ("elements",))
    edges, private = import_graph.imports(modules)
    assert edges["elements.sub.b"] == {"elements.a", "elements.c"} and edges["elements"] == {"elements.sub.b"}
    assert import_graph.cycles(edges) == [["elements.a", "elements.sub.b"]]
    assert private == [("elements.sub.b", "elements.c", "_hidden")]
    assert import_graph.collapse(edges, modules)["elements.sub"] == {"elements"}


def test_no_private_names_cross_modules():
    _, private = import_graph.imports(import_graph.module_files())
    assert not private, sorted(private)
