"""Name → class registries whose options are the constructor's keyword-only arguments.

Unknown names and options fail loudly and list the valid ones. `MIXERS` is the mixer registry;
tasks keep their own `Registry("task")`.
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

OPTION_LINE = re.compile(r"^\s+(?P<name>[a-z_][a-z0-9_]*): (?P<meaning>.+)$")


class Registry:
    def __init__(self, kind: str, *, reserved: tuple[str, ...] = ()):
        self.kind, self.reserved = kind, reserved  # reserved: keyword arguments that are not options
        self._classes: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type], type]:
        def decorator(cls: type) -> type:
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            cls.registry_name = name
            self._classes[name] = cls
            return cls

        return decorator

    def available(self) -> list[str]:
        return sorted(self._classes)

    def get_class(self, name: str) -> type:
        if name not in self._classes:
            raise ValueError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.available())}")
        return self._classes[name]

    def options(self, name: str) -> dict[str, Any]:
        """Options (keyword-only constructor arguments) with their defaults; required ones map to `inspect.Parameter.empty`."""
        signature = inspect.signature(self.get_class(name).__init__)
        return {
            p.name: p.default
            for p in signature.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in self.reserved
        }

    def check_options(self, name: str, given: dict[str, Any]) -> None:
        valid = self.options(name)
        unknown = sorted(set(given) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for {self.kind} {name!r}; "
                f"valid options: {', '.join(sorted(valid)) or '(none)'}"
            )
        missing = sorted(k for k, v in valid.items() if v is inspect.Parameter.empty and k not in given)
        if missing:
            raise ValueError(f"{self.kind} {name!r} needs option(s): {', '.join(missing)}")

    def build(self, name: str, **kwargs: Any):
        options = {k: v for k, v in kwargs.items() if k not in self.reserved}
        self.check_options(name, options)
        return self.get_class(name)(**kwargs)

    def option_docs(self, name: str) -> dict[str, str]:
        """One line per option, from the `Options:` section of the class docstring."""
        doc = inspect.getdoc(self.get_class(name)) or ""
        section = doc.split("Options:", 1)[1] if "Options:" in doc else ""
        docs = {}
        for line in section.splitlines():
            match = OPTION_LINE.match(line)
            if match:
                docs[match["name"]] = match["meaning"].strip()
        return docs

    def describe(self) -> list[dict[str, Any]]:
        """One entry per class: name, options with defaults and meanings, docstring summary, and modes."""
        rows = []
        for name in self.available():
            cls = self._classes[name]
            doc = (cls.__doc__ or "").strip().splitlines()
            row = {"name": name, "summary": doc[0] if doc else "", "options": self.options(name),
                   "option_docs": self.option_docs(name)}
            if hasattr(cls, "modes"):
                row.update(modes=list(cls.modes), default_mode=cls.default_mode)
            rows.append(row)
        return rows


def format_listing(rows: list[dict[str, Any]]) -> str:
    """What `seqbench models` / `seqbench tasks` print: name, modes, summary, each option with its
    default and its one-line meaning."""
    lines = []
    for row in rows:
        modes = ""
        if "modes" in row:
            modes = "  modes: " + ", ".join(f"{m}*" if m == row["default_mode"] else m for m in row["modes"])
        lines += [f"{row['name']}{modes}", f"  {row['summary']}"]
        for option, default in row["options"].items():
            shown = "(required)" if default is inspect.Parameter.empty else repr(default)
            meaning = row["option_docs"].get(option, "")
            lines.append(f"    {option} = {shown}" + (f"  — {meaning}" if meaning else ""))
    return "\n".join(lines)


MIXERS = Registry("mixer", reserved=("d_model",))
register, available, get_class, options, describe = (
    MIXERS.register, MIXERS.available, MIXERS.get_class, MIXERS.options, MIXERS.describe)


def build(name: str, *, d_model: int, **mixer_options: Any):
    if not isinstance(d_model, int) or d_model < 1:
        raise ValueError(f"d_model must be a positive integer, got {d_model!r}")
    return MIXERS.build(name, d_model=d_model, **mixer_options)
