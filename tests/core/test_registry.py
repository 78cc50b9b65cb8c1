"""The engine registry: one row per engine, and every list of engines read from it."""

from __future__ import annotations

import importlib

import click

from monarch.cli.migrations import generate
from monarch.config import ENGINE_LABELS, SCHEMES
from monarch.engines import registry
from monarch.engines.sqltext import SQLEngine
from monarch.migrations.generate import TEMPLATES
from monarch.migrations.migration import ENGINE_NAMES
from monarch.migrations.sqlfiles import SQLFileMigration


def test_each_row_names_its_engine_class_which_bears_the_same_name() -> None:
    for row in registry.engines():
        module, _, name = row.engine_class.partition(":")
        cls = getattr(importlib.import_module(module), name)
        assert cls.name == row.name
        assert row.template in TEMPLATES
        assert issubclass(cls, SQLEngine) == row.sql_files  # .sql files need the engine's sql()


def test_rows_are_found_by_name_and_by_scheme_in_any_case() -> None:
    assert [r.name for r in registry.engines()] == ["mongo", "postgres", "sqlite"]
    assert registry.by_name("postgres") is registry.by_scheme("PostgreSQL")
    assert registry.by_scheme("mongodb+srv") is registry.by_name("mongo")
    assert registry.by_name("oracle") is None and registry.by_scheme("mysql") is None
    assert [r.default_port for r in registry.engines()] == [27017, 5432, None]


def test_every_list_of_engines_is_the_registry() -> None:
    names = {r.name for r in registry.engines()}
    assert set(SCHEMES) == {s for r in registry.engines() for s in r.schemes}
    assert set(SCHEMES.values()) == names == set(ENGINE_LABELS) == set(ENGINE_NAMES)
    assert SQLFileMigration.engines == {r.name for r in registry.engines() if r.sql_files}
    [choice] = [p for p in generate.params if p.name == "engine"]
    assert isinstance(choice.type, click.Choice) and set(choice.type.choices) == names
