"""The README keeps up with the tree and the CLI: its Layout section lists
exactly what `ls harness` shows, its command list names every subcommand,
long flag and choice that `harness.cli.build_parser()` accepts, and every
repository path it or docs/ name exists."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from harness.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"


def section(text: str, title: str) -> str:
    """The body of the `## title` section (up to the next `## ` heading)."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


# -- Layout -----------------------------------------------------------------


def layout_entries(text: str) -> set[str]:
    """Names listed under `harness/` in the Layout block: `cli.py`, `fleet/`, ...
    The block is indented 4 (code) and the package's entries 2 more."""
    body = section(text, "Layout")
    entries: set[str] = set()
    inside = False
    for line in body.splitlines():
        if re.match(r"^ {4}\S", line):
            inside = line.split()[0] == "harness/"
        elif inside and (match := re.match(r"^ {6}(\S+)", line)):
            entries.add(match.group(1))
    return entries


def harness_tree() -> set[str]:
    """`ls harness` as the README means it: packages with a slash, modules,
    no `__init__.py` (every package has one) and no caches."""
    names = set()
    for path in (REPO / "harness").iterdir():
        if path.is_dir() and (path / "__init__.py").is_file():
            names.add(path.name + "/")
        elif path.suffix == ".py" and path.name != "__init__.py":
            names.add(path.name)
    return names


def test_layout_section_lists_exactly_the_harness_tree():
    listed, present = layout_entries(README.read_text()), harness_tree()
    assert present - listed == set(), f"README Layout misses {sorted(present - listed)}"
    assert listed - present == set(), f"README Layout lists {sorted(listed - present)}, which harness/ no longer has"


_SAMPLE_LAYOUT = """## Layout

    harness/            the host controller
      cli.py              argument parsing
      fleet/              inventory, profiles,
                          trust and the rest
    devices/            agent.py
      profiles/           not under harness/

## Next
"""


def test_layout_parser_reads_only_the_harness_entries():
    assert layout_entries(_SAMPLE_LAYOUT) == {"cli.py", "fleet/"}


# -- Commands ---------------------------------------------------------------


def command_entries(text: str) -> list[str]:
    """Each `harness ...` line of the Commands section with its indented
    continuation lines, as one string."""
    entries: list[str] = []
    for line in section(text, "Commands").splitlines():
        stripped = line.strip()
        if line.startswith("    ") and stripped.startswith("harness "):
            entries.append(stripped)
        elif entries and line.startswith("     ") and stripped and not stripped.startswith("harness "):
            entries[-1] += " " + stripped
        elif not line.startswith("    "):
            entries.append("")  # prose ends an entry
    return [e for e in entries if e]


def subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(path, parser) for every leaf command: ("run",), ("devices", "check"), ..."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield path, parser
        return
    for action in actions:
        for name, child in action.choices.items():
            yield from subcommands(child, (*path, name))


def entries_for(path: tuple[str, ...], entries: list[str]) -> list[str]:
    found = []
    for entry in entries:
        words = entry.split()[1:]
        if len(words) >= len(path) and all(p in w.split("|") for p, w in zip(path, words)):
            found.append(entry)
    return found


def mentioned(word: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def test_command_list_names_every_subcommand_flag_and_choice():
    entries = command_entries(README.read_text())
    parser = build_parser()
    missing = []
    for path, sub in subcommands(parser):
        name = "harness " + " ".join(path)
        mine = " ".join(entries_for(path, entries))
        if not mine:
            missing.append(f"`{name}` has no line")
            continue
        for action in sub._actions:
            flags = [f for f in action.option_strings if f.startswith("--") and f != "--help"]
            missing += [f"`{name}` lacks {flag}" for flag in flags if not mentioned(flag, mine)]
            if action.choices and action.option_strings:
                missing += [f"`{name}` lacks {c!r}" for c in action.choices if not mentioned(str(c), mine)]
    top = [f for a in parser._actions for f in a.option_strings if f.startswith("--") and f != "--help"]
    missing += [f"`harness` lacks {flag}" for flag in top if not any(mentioned(flag, e) for e in entries)]
    assert missing == [], "README Commands is incomplete:\n" + "\n".join(missing)


_SAMPLE_COMMANDS = """## Commands

    harness devices list|check [--inventory FILE]
    harness report [RUN_ID] [--versus variants|devices]
                   [--format table|md]

Prose that is not a command: harness run --nothing.
"""


def test_command_parser_joins_continuations_and_splits_alternatives():
    entries = command_entries(_SAMPLE_COMMANDS)
    assert entries == [
        "harness devices list|check [--inventory FILE]",
        "harness report [RUN_ID] [--versus variants|devices] [--format table|md]",
    ]
    assert entries_for(("devices", "check"), entries) == entries[:1]
    assert entries_for(("devices", "trust"), entries) == []
    assert mentioned("md", entries[1]) and not mentioned("--vers", entries[1])


# -- Paths named in the docs ------------------------------------------------

_PATH = re.compile(r"`((?:harness|devices|models|tests|docs)/[\w./-]+?\.(?:py|yaml|md|js))`")


def test_every_repository_path_the_docs_name_exists():
    pages = [README, *sorted(DOCS.glob("*.md"))]
    gone = []
    for page in pages:
        for path in _PATH.findall(page.read_text()):
            if not (REPO / path).exists():
                gone.append(f"{page.relative_to(REPO)}: {path}")
    assert gone == []


def test_docs_pages_the_readme_links_exist():
    links = re.findall(r"\]\((docs/[\w.-]+\.md)(?:#[\w-]+)?\)", README.read_text())
    assert links, "the README links no docs/ page"
    assert [link for link in links if not (REPO / link).is_file()] == []
    unlinked = [p.name for p in DOCS.glob("*.md") if f"docs/{p.name}" not in links]
    assert unlinked == [], f"docs pages the README does not link: {unlinked}"


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M):
        found.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return found


def test_every_link_between_the_pages_lands():
    broken = []
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        for target, anchor in re.findall(r"\]\(([\w./-]*\.md)?(?:#([\w-]+))?\)", page.read_text()):
            dest = (page.parent / target) if target else page
            if not dest.is_file():
                broken.append(f"{page.name}: {target}")
            elif anchor and anchor not in anchors(dest):
                broken.append(f"{page.name}: {target}#{anchor}")
    assert broken == []


def test_architecture_table_names_every_module_of_every_package():
    """docs/architecture.md's package table names each module (and the report's
    script) of each package, and none that is gone."""
    text = (REPO / "docs" / "architecture.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)/` \| (.*) \|$", text, flags=re.M)}
    problems = []
    for package in sorted(p for p in (REPO / "harness").iterdir() if (p / "__init__.py").is_file()):
        row = rows.get(package.name)
        if row is None:
            problems.append(f"{package.name}/ has no row")
            continue
        modules = {f.name for f in package.iterdir() if f.suffix in (".py", ".js") and f.name != "__init__.py"}
        named = set(re.findall(r"`(\w+\.(?:py|js))`", row))
        problems += [f"{package.name}/{m} is not named" for m in sorted(modules - named)]
        problems += [f"{package.name}/{m} is named but gone" for m in sorted(named - modules)]
    assert problems == [], "docs/architecture.md's package table is stale:\n" + "\n".join(problems)
