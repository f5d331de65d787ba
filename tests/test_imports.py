"""Imports go one way: the chat app (`conversations`) uses the agent (`agent`: the graph,
its model calls, tools, ledger and checkpointer), which imports nothing of the chat app
and gets what it needs of a conversation through its runtime context (agent.context).
Neither app imports the other inside a function, where a cycle could hide."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def modules(app: str) -> list[Path]:
    return sorted(path for path in (ROOT / app).rglob("*.py") if "migrations" not in path.parts)


def imported(node: ast.AST) -> list[str]:
    """The modules an import statement names (a relative one: as written, dots first)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        return ["." * node.level + (node.module or "")]
    return []


def names_app(module: str, app: str) -> bool:
    return module == app or module.startswith(app + ".")


@pytest.mark.parametrize("path", modules("agent"), ids=lambda path: str(path.relative_to(ROOT)))
def test_the_agent_imports_nothing_of_the_chat_app(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    chat = [module for node in ast.walk(tree) for module in imported(node) if names_app(module, "conversations")]
    assert chat == []


@pytest.mark.parametrize(
    "path", [*modules("agent"), *modules("conversations")], ids=lambda path: str(path.relative_to(ROOT))
)
def test_no_function_imports_the_other_app(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    other = "agent" if path.relative_to(ROOT).parts[0] == "conversations" else "conversations"
    local = [
        module
        for function in ast.walk(tree) if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function) for module in imported(node) if names_app(module, other)
    ]
    assert local == []


def conversations_imports(path: Path) -> set[str]:
    """The modules of the chat app a module of it imports, as dotted names within the app."""
    package = path.relative_to(ROOT / "conversations").with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            names.add(".".join([*base, *(node.module.split(".") if node.module else [])]))
    return names


EDGES = {"consumers", "views", "pages", "exports", "admin"}


@pytest.mark.parametrize("path", modules("conversations/selectors"), ids=lambda path: str(path.relative_to(ROOT)))
def test_selectors_only_read(path):
    """Selectors use no service, and make no JSON: that is the edges' (presenters and up)."""
    forbidden = {name for name in conversations_imports(path) if name.split(".")[0] in {"services", "presenters", *EDGES}}
    assert forbidden == set()


@pytest.mark.parametrize("path", modules("conversations/services"), ids=lambda path: str(path.relative_to(ROOT)))
def test_services_use_no_edge(path):
    assert {name for name in conversations_imports(path) if name.split(".")[0] in EDGES} == set()
