"""The ES modules of static/js import one another one way, with no cycle, and import only
names their modules export (docs/architecture.md, the static/js row). No server, no browser."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "static" / "js"
# Every import of the app names what it takes: `import { a, b } from './x.js';`, on one
# line or several.
IMPORT = re.compile(r"^import \{([^}]*)\} from '([^']+)';$", re.M)
EXPORT = re.compile(r"^export (?:async )?(?:function|const|let|class) (\w+)", re.M)


def modules() -> list[Path]:
    return sorted(JS.rglob("*.js"))


def name(path: Path) -> str:
    return path.relative_to(JS).as_posix()


def imports(path: Path) -> dict[str, set[str]]:
    """The modules `path` imports, each with the names it takes."""
    found: dict[str, set[str]] = {}
    for names, target in IMPORT.findall(path.read_text(encoding="utf-8")):
        module = name((path.parent / target).resolve())
        found.setdefault(module, set()).update(n.strip() for n in names.split(",") if n.strip())
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of the graph as a path that ends where it starts, or [] if there is none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str]:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return []
        path.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return []

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return []


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_module_imports_itself_through_others():
    graph = {name(path): set(imports(path)) for path in modules()}
    assert find_cycle(graph) == []


def test_every_import_names_an_export_of_an_existing_module():
    exported = {name(path): set(EXPORT.findall(path.read_text(encoding="utf-8"))) for path in modules()}
    missing = [
        f"{name(path)} imports {taken} from {module}"
        for path in modules()
        for module, names in imports(path).items()
        for taken in sorted(names - exported.get(module, set()))
    ]
    assert missing == []
