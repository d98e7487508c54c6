"""Mutation testing of the rules that must not silently break: the exchange's rules, the
ranking filters and webhook intake. Each mutant (one small change to one function: a
comparison flipped, a boolean inverted, a number changed, a guard removed) is written into
a scratch copy of the repository and the tests that cover that module run against it; a
mutant the tests do not notice "survives" and is listed.

    scripts/mutation.py [--only exchange|ranking|webhooks] [--list]

It needs PostgreSQL (DATABASE_URL; scripts/pg.sh start) and takes a while (tens of
minutes): it is a habit for changes to these modules, not part of .ci/run.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# area -> ((module, functions to mutate; () = every function), tests that cover them)
TARGETS: dict[str, tuple[list[tuple[str, tuple[str, ...]]], list[str]]] = {
    "exchange": (
        [
            ("recommender/exchange/rules.py", ("starter_grant_allowed", "is_bot")),
            ("recommender/exchange/clicks.py",
             ("_Book.not_billable_because", "_Book._billing_state_forbids", "_Book.bill")),
            ("recommender/exchange/review.py", ("smoothed_ctr", "_load_network_ctr", "under_review")),
            ("recommender/exchange/ledger.py",
             ("balance", "exhausted_store_ids", "can_pay_a_click", "click_entries", "resolve_held")),
            ("recommender/exchange/impressions.py", ("record_impression",)),
        ],
        ["tests/recommender/test_exchange.py", "tests/recommender/test_review_operations.py",
         "tests/recommender/test_storefront_endpoints.py",
         "tests/recommender/test_click_settlement.py"],
    ),
    "ranking": (
        [
            ("recommender/ranking/recommendations.py",
             ("recommendations_for", "_partner_items", "_own_items", "in_categories")),
            ("recommender/ranking/network.py", ("partners_of", "fairness_of")),
            ("recommender/ranking/competitors.py", ("same_item", "same_niche_stores")),
        ],
        ["tests/recommender/test_recommendations.py", "tests/recommender/test_ranking_rules.py"],
    ),
    "webhooks": (
        [("stores/webhooks.py", ("receive", "_record", "process", "_fail", "retry_due"))],
        ["tests/stores/test_webhooks.py", "tests/stores/test_webhook_faults.py",
         "tests/test_malformed_signatures.py"],
    ),
}  # fmt: skip

_FLIPS = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}  # fmt: skip


@dataclass
class Mutant:
    module: str
    function: str
    line: int
    description: str
    source: str


def _mutations(tree: ast.AST) -> Iterator[tuple[ast.AST, str, int]]:
    """Every single-point change of ``tree`` (a mutated copy, what changed, and the line)."""
    for mutated, description, node in _changes(tree):
        yield mutated, description, getattr(node, "lineno", 0)


def _changes(tree: ast.AST) -> Iterator[tuple[ast.AST, str, ast.AST]]:
    nodes = list(ast.walk(tree))
    # Length caps in slices ([:255]) guard storage, not rules; changing them by one is noise.
    skipped = {id(n) for s in nodes if isinstance(s, ast.Slice) for n in ast.walk(s)}
    # Decorators (a cache's size) are not the function's logic.
    for decorator in getattr(tree, "decorator_list", []):
        skipped.update(id(n) for n in ast.walk(decorator))
    for index, node in enumerate(nodes):
        if id(node) in skipped:
            continue
        for change, description in _changes_of(node):
            yield _edit(tree, index, change), description, node


def _changes_of(node: ast.AST) -> Iterator[tuple[object, str]]:
    """(how to change a copy of ``node``, what it means) for each mutation that applies."""
    if isinstance(node, ast.Compare):
        for position, op in enumerate(node.ops):
            if type(op) in _FLIPS:
                yield (lambda n, p=position: n.ops.__setitem__(p, _FLIPS[type(n.ops[p])]()),
                       f"{type(op).__name__} flipped")  # fmt: skip
    elif isinstance(node, ast.BoolOp):
        other = ast.Or if isinstance(node.op, ast.And) else ast.And
        yield (lambda n, o=other: setattr(n, "op", o())), "and/or swapped"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield (lambda n: setattr(n, "op", ast.UAdd())), "not removed"
    elif isinstance(node, ast.If):
        yield (lambda n: setattr(n, "test", ast.Constant(False))), "guard never taken"
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if node.value not in (0, 1):
            yield (lambda n: setattr(n, "value", n.value + 1)), f"{node.value} -> {node.value + 1}"
    elif isinstance(node, ast.Return) and isinstance(node.value, ast.Constant):
        if isinstance(node.value.value, bool):
            yield (
                (lambda n: setattr(n, "value", ast.Constant(not n.value.value))),
                ("returned bool inverted"),
            )
        elif isinstance(node.value.value, str) and node.value.value:
            yield (
                (lambda n: setattr(n, "value", ast.Constant(""))),
                (f"returns '' instead of {node.value.value!r}"),
            )


def _edit(tree: ast.AST, index: int, change) -> ast.AST:
    mutated = copy.deepcopy(tree)
    change(list(ast.walk(mutated))[index])
    return mutated


def mutants_of(module: str, functions: tuple[str, ...]) -> Iterator[Mutant]:
    """Mutants of the named module-level functions and methods ("Class.method")."""
    source = (ROOT / module).read_text()
    tree = ast.parse(source)
    for place, name, function in _functions(tree):
        if name not in functions:
            continue
        for mutated_function, description, line in _mutations(function):
            mutated = copy.deepcopy(tree)
            body = mutated.body if len(place) == 1 else mutated.body[place[0]].body
            body[place[-1]] = mutated_function
            yield Mutant(module, name, line, description, ast.unparse(mutated))


def _functions(tree: ast.Module) -> Iterator[tuple[tuple[int, ...], str, ast.FunctionDef]]:
    for n, node in enumerate(tree.body):
        if isinstance(node, ast.FunctionDef):
            yield (n,), node.name, node
        elif isinstance(node, ast.ClassDef):
            for m, method in enumerate(node.body):
                if isinstance(method, ast.FunctionDef):
                    yield (n, m), f"{node.name}.{method.name}", method


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=sorted(TARGETS))
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    args = parser.parse_args()
    if "DATABASE_URL" not in os.environ and not args.list:
        raise SystemExit("set DATABASE_URL (scripts/pg.sh start prints one)")
    scratch = Path(tempfile.mkdtemp(prefix="interlayer-mutants-"))
    shutil.copytree(ROOT, scratch / "repo", symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "var", "artifacts", "__pycache__", ".ruff_cache"))  # fmt: skip
    repo = scratch / "repo"
    (repo / ".venv").symlink_to(ROOT / ".venv")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DATABASE_CONN_MAX_AGE": "0"}
    totals: dict[str, list[int]] = {}
    survivors: list[Mutant] = []
    for area, (modules, tests) in TARGETS.items():
        if args.only and area != args.only:
            continue
        killed = total = 0
        for module, functions in modules:
            original = (repo / module).read_text()
            for mutant in mutants_of(module, functions):
                total += 1
                if args.list:
                    print(f"{area} {module}:{mutant.line} {mutant.function}: {mutant.description}")
                    continue
                (repo / module).write_text(mutant.source)
                started = time.monotonic()
                result = subprocess.run(
                    [str(ROOT / ".venv/bin/python"), "-m", "pytest", "-x", "-q", "--reuse-db",
                     "-p", "no:cacheprovider", *tests],
                    cwd=repo, env=env, capture_output=True, text=True, timeout=600,
                )  # fmt: skip
                died = result.returncode != 0
                killed += died
                if not died:
                    survivors.append(mutant)
                print(f"{'killed  ' if died else 'SURVIVED'} {module}:{mutant.line} "
                      f"{mutant.function}: {mutant.description} ({time.monotonic() - started:.0f}s)",
                      flush=True)  # fmt: skip
            (repo / module).write_text(original)
        totals[area] = [killed, total]
    shutil.rmtree(scratch, ignore_errors=True)
    if args.list:
        return
    print("\nkill rate by area:")
    for area, (killed, total) in totals.items():
        print(f"  {area:<9} {killed}/{total} killed ({killed / max(total, 1):.0%})")
    print(f"\n{len(survivors)} surviving mutant(s):")
    for mutant in survivors:
        print(f"  {mutant.module}:{mutant.line} {mutant.function}: {mutant.description}")
    sys.exit(0)


if __name__ == "__main__":
    main()
