"""Name → class registries whose options are the constructor's keyword-only arguments.

Unknown names and options fail loudly and list the valid ones. `MIXERS` is the mixer registry;
tasks keep their own `Registry("task")`.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable


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

    def describe(self) -> list[dict[str, Any]]:
        """One entry per class: name, options with defaults, docstring summary, and modes if it has them."""
        rows = []
        for name in self.available():
            cls = self._classes[name]
            doc = (cls.__doc__ or "").strip().splitlines()
            row = {"name": name, "summary": doc[0] if doc else "", "options": self.options(name)}
            if hasattr(cls, "modes"):
                row.update(modes=list(cls.modes), default_mode=cls.default_mode)
            rows.append(row)
        return rows


MIXERS = Registry("mixer", reserved=("d_model",))
register, available, get_class, options, describe = (
    MIXERS.register, MIXERS.available, MIXERS.get_class, MIXERS.options, MIXERS.describe)


def build(name: str, *, d_model: int, **mixer_options: Any):
    if not isinstance(d_model, int) or d_model < 1:
        raise ValueError(f"d_model must be a positive integer, got {d_model!r}")
    return MIXERS.build(name, d_model=d_model, **mixer_options)
