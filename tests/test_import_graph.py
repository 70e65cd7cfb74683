"""tools/import_graph.py: the first-party packages have no import cycle (between modules or between packages) and
import no private names across modules."""

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
    assert "0 module cycles" in out.stderr and "0 package cycles" in out.stderr
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
    assert import_graph.collapse(edges, modules)["elements.sub"] == {"elements.a", "elements.c"}


def test_a_package_cycle_without_a_module_cycle_fails(tmp_path):
    """decoders.x -> partition.y and partition.z -> decoders.w: no module cycle, but the packages import each other."""
    root = tmp_path / "elements"
    for pkg, files in {
        "decoders": {"x": "from elements.partition import y\n", "w": ""},
        "partition": {"y": "", "z": "from elements.decoders.w import f\n"},
    }.items():
        (root / pkg).mkdir(parents=True)
        (root / pkg / "__init__.py").write_text("")
        for name, text in files.items():
            (root / pkg / f"{name}.py").write_text(text)
    (root / "__init__.py").write_text("")
    (root / "types.py").write_text("")
    (root / "decoders" / "v.py").write_text("from elements import types\n")  # a sub-package using a top module: fine
    (root / "spec.py").write_text("from elements.decoders import v\n")  # and a top module using a sub-package
    modules = import_graph.module_files(tmp_path, ("elements",))
    edges, _ = import_graph.imports(modules)
    assert import_graph.cycles(edges) == []
    assert import_graph.cycles(import_graph.collapse(edges, modules)) == [["elements.decoders", "elements.partition"]]


def test_decoders_do_not_import_partition():
    modules = import_graph.module_files()
    edges, _ = import_graph.imports(modules)
    packages = import_graph.collapse(edges, modules)
    assert "elements.partition" not in packages["elements.decoders"]
    assert "elements.decoders" not in packages["elements.partition"]


def test_no_private_names_cross_modules():
    _, private = import_graph.imports(import_graph.module_files())
    assert not private, sorted(private)
