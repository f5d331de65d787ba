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
