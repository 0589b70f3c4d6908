"""The reference pages name everything there is: every command in docs/CLI.md,
every setting in docs/SETTINGS.md."""

from __future__ import annotations

from pathlib import Path

import typer.main

from worker.cli import cli
from worker.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def command_names(group: typer.Typer, prefix: str = "skillq") -> list[str]:
    click_group = typer.main.get_command(group)
    names: list[str] = []

    def walk(command: object, path: str) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, f"{path} {name}")
        else:
            names.append(path)

    walk(click_group, prefix)
    return names


def test_every_command_has_a_row_in_the_cli_page() -> None:
    page = (ROOT / "docs" / "CLI.md").read_text()
    names = command_names(cli)
    assert len(names) > 20
    missing = [
        name
        for name in names
        if f"`{name}" not in page and f"`{name.rsplit(' ', 1)[-1]} " not in page
    ]
    assert missing == []


def test_every_setting_has_a_row_in_the_settings_page() -> None:
    page = (ROOT / "docs" / "SETTINGS.md").read_text()
    missing = [
        f"SKILLQ_{name.upper()}"
        for name in Settings.model_fields
        if f"`SKILLQ_{name.upper()}`" not in page
    ]
    assert missing == []


def test_every_relative_link_reaches_a_file() -> None:
    import re

    broken: list[str] = []
    for page in [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.name}: {target}")
    assert broken == []
