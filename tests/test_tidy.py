"""The style is a test, and it ratchets: the allow-lists below may only shrink."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ledger", "treasury", "api")
# Who may import whom: dependencies point api -> treasury -> ledger, never back.
FORBIDDEN_IMPORTS = {"ledger": ("treasury", "api"), "treasury": ("api",)}
MODULE_LINES_MAX = 400
FUNCTION_LINES_MAX = 70
# Existing exceptions, each with a reason. Shrink, never grow.
LONG_MODULES_ALLOWED: frozenset[str] = frozenset()
LONG_FUNCTIONS_ALLOWED: frozenset[str] = frozenset()
# (text, where it is banned, what to use instead)
BANNED_CALLS = (
    ("datetime.now(", ("ledger", "treasury"), "the ledger clock (ledger.clock) or a timestamp passed in"),
    ("datetime.utcnow(", PACKAGES, "an aware datetime from ledger.clock"),
    ("float(", ("ledger",), "integer tiyn (ledger.money)"),
    (".commit(", PACKAGES, "the unit of work (ledger.unit_of_work), the only place that commits"),
    ("print(", ("ledger", "treasury"), "structlog"),
    ("uuid.uuid4(", PACKAGES, "ledger.ids.new_id"),
    ("os.environ", ("ledger", "treasury"), "settings passed in from api.settings"),
)
COMMIT_ALLOWED = {"ledger/unit_of_work.py", "api/database.py"}


def _sources(packages=PACKAGES):
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("package", sorted(FORBIDDEN_IMPORTS))
def test_dependencies_point_one_way(package):
    offenders = []
    for path in _sources((package,)):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in FORBIDDEN_IMPORTS[package]:
                    offenders.append(f"{_relative(path)}:{node.lineno} imports {name}")
    assert offenders == []


def test_modules_stay_small():
    long_modules = {
        _relative(path) for path in _sources() if len(path.read_text().splitlines()) > MODULE_LINES_MAX
    }
    assert long_modules <= LONG_MODULES_ALLOWED, (
        f"split these modules: {sorted(long_modules - LONG_MODULES_ALLOWED)}"
    )
    assert long_modules >= LONG_MODULES_ALLOWED, "a module got shorter: remove it from LONG_MODULES_ALLOWED"


def test_functions_stay_small():
    long_functions = set()
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > FUNCTION_LINES_MAX:
                    long_functions.add(f"{_relative(path)}:{node.name}")
    assert long_functions <= LONG_FUNCTIONS_ALLOWED, (
        f"split: {sorted(long_functions - LONG_FUNCTIONS_ALLOWED)}"
    )
    assert long_functions >= LONG_FUNCTIONS_ALLOWED, "a function got shorter: shrink LONG_FUNCTIONS_ALLOWED"


@pytest.mark.parametrize(("text", "packages", "instead"), BANNED_CALLS)
def test_banned_calls(text, packages, instead):
    offenders = []
    for path in _sources(packages):
        if text == ".commit(" and _relative(path) in COMMIT_ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if text in code:
                offenders.append(f"{_relative(path)}:{number}")
    assert offenders == [], f"{text} is banned here; use {instead}"
