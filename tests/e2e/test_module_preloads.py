"""The pages that load ES modules preload every module they import, so the browser fetches
them at once instead of one level of imports after another. No server, no browser."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "static"
TEMPLATES = ROOT / "templates"
IMPORT = re.compile(r"^import \{[^}]*\} from '([^']+)';$", re.M)
PRELOAD = re.compile(r"""<link rel="modulepreload" href="\{% static '([^']+)' %\}">""")
INCLUDE = re.compile(r"""\{% include "([^"]+)" %\}""")


def preloaded_by(template: str) -> list[str]:
    """The modules a template preloads, with those of the templates it includes."""
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    return PRELOAD.findall(text) + [m for included in INCLUDE.findall(text) for m in preloaded_by(included)]


def imported_by(entry: str) -> set[str]:
    """Every module the entry imports, directly or not, as paths under static/."""
    found: set[str] = set()
    todo = [STATIC / entry]
    while todo:
        module = todo.pop()
        for target in IMPORT.findall(module.read_text(encoding="utf-8")):
            path = (module.parent / target).resolve()
            name = path.relative_to(STATIC).as_posix()
            if name not in found:
                found.add(name)
                todo.append(path)
    return found


@pytest.mark.parametrize(
    ("template", "entry"),
    [("conversations/chat.html", "js/chat/main.js"), ("conversations/approvals.html", "js/inbox.js")],
)
def test_a_page_preloads_exactly_the_modules_its_entry_imports(template, entry):
    preloaded = preloaded_by(template)
    assert len(preloaded) == len(set(preloaded))
    assert set(preloaded) == imported_by(entry)
