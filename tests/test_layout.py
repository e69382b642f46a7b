"""The shape of the package: imports point one way (read from the source with ``ast``, imports inside functions
included, ``TYPE_CHECKING`` ones not), the CLI is a shell over the public API, and flags are the API's keywords."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tsf_cli"

# What each part of tsf_cli may import besides itself, lowest first: data flows down this list, imports point up it.
ALLOWED = {
    "errors": set(),
    "results": set(),
    "presets": set(),
    "io": {"errors", "results"},
    "media": {"errors", "io"},
    "model": {"errors", "results", "io", "presets"},
    "inference": {"errors", "results", "presets", "io", "media", "model"},
    "training": {"errors", "results", "presets", "io", "media", "model", "inference"},
    "demo": {"errors", "results", "presets", "io", "media", "model", "inference", "training"},
    "api": {"errors", "results", "presets", "io", "media", "model", "inference", "training", "demo"},
    "cli": {"api", "errors", "results"},
}
# Programs of their own may use the command line's display code.
ENTRY_POINTS = {"tsf_cli.__main__": {"cli"}, "tsf_cli.demo.__main__": {"cli"}}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The tsf_cli modules that ``path`` imports anywhere (functions included), outside ``if TYPE_CHECKING:``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()

    def visit(node):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            # `from package import module` imports that module; `from module import name`, the module
            submodules = {f"{target}.{alias.name}" for alias in node.names} & modules
            found.update(submodules or {target})
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in modules and m != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, modules) for p in paths}


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else "tsf_cli"


def test_the_graph_is_read_from_the_source(graph):
    # the checks below mean nothing if the reader misses imports: spot-check a few of each kind
    assert "tsf_cli.model.loading" in graph["tsf_cli.model.timesformer"]  # from .loading import ...
    assert "tsf_cli.inference.runner" in graph["tsf_cli.api"]  # inside a function
    assert "tsf_cli.inference.predictor" not in graph["tsf_cli.training.evaluate"]  # TYPE_CHECKING only ...
    assert "tsf_cli.cli.display" in graph["tsf_cli.cli.predict"]  # from . import display
    assert "tsf_cli.inference.pool" in graph["tsf_cli.inference.runner"]  # ... and a lazy one


def test_no_import_cycles(graph):
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycle = trail[trail.index(target) :] + [target] if target in trail else [module, target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_imports_point_one_way(graph):
    wrong = []
    for module, targets in graph.items():
        part = _part(module)
        allowed = ALLOWED.get(part, set()) | ENTRY_POINTS.get(module, set()) | {part, "tsf_cli"}
        wrong += [f"{module} -> {t}" for t in sorted(targets) if _part(t) not in allowed]
    assert wrong == []


def test_the_network_never_imports_its_loader_s_callers(graph):
    # the model file imports the loading mixins, the kernels and the names of the pools, nothing that does I/O on
    # its behalf
    assert graph["tsf_cli.model.timesformer"] == {"tsf_cli.model.kernels", "tsf_cli.model.loading", "tsf_cli.results"}
    assert "tsf_cli.model.timesformer" not in graph["tsf_cli.model.loading"]


def _commands():
    from tsf_cli.cli.app import app

    return {command.name: command.callback for command in app.registered_commands}


# the API function behind each command, and the command's parameters that are about display, not the work
API_OF = {
    "classify": ("classify", {"as_json"}),
    "batch": ("batch", set()),
    "timeline": ("timeline", {"as_json", "videos"}),
    "embed": ("embed_files", set()),
    "explain": ("explain", set()),
    "train": ("train", set()),
    "eval": ("evaluate", {"as_json"}),
    "export": ("export", {"as_json"}),
    "demo": ("run_demo", {"as_json"}),
    "info": ("probe", {"as_json", "video"}),
}


@pytest.mark.parametrize("command", sorted(API_OF))
def test_every_flag_is_a_keyword_of_the_api_function_it_feeds(command):
    from tsf_cli import api

    function_name, display_only = API_OF[command]
    flags = set(inspect.signature(_commands()[command]).parameters) - display_only
    keywords = set(inspect.signature(getattr(api, function_name)).parameters)
    assert flags - keywords == set()


def test_the_cli_choices_are_the_api_s():
    from tsf_cli import api
    from tsf_cli.cli.explain import Method
    from tsf_cli.cli.export import GraphDType
    from tsf_cli.cli.options import DType, Pool, Runtime, Sampling

    assert tuple(s.value for s in Sampling) == api.SAMPLINGS
    assert tuple(d.value for d in DType) == api.DTYPES
    assert tuple(p.value for p in Pool) == api.POOLS
    assert tuple(m.value for m in Method) == api.METHODS
    assert tuple(r.value for r in Runtime) == api.RUNTIMES
    assert tuple(d.value for d in GraphDType) == api.GRAPH_DTYPES
