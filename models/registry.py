"""Name → mixer class, with options checked against the constructor's keyword-only arguments."""
from __future__ import annotations

import inspect
from typing import Any, Callable

_REGISTRY: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    def decorator(cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f"mixer {name!r} is registered twice")
        cls.registry_name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def available() -> list[str]:
    return sorted(_REGISTRY)


def get_class(name: str) -> type:
    if name not in _REGISTRY:
        raise ValueError(f"unknown mixer {name!r}; valid mixers: {', '.join(available())}")
    return _REGISTRY[name]


def options(name: str) -> dict[str, Any]:
    """The mixer's options (keyword-only constructor arguments other than d_model) with defaults."""
    signature = inspect.signature(get_class(name).__init__)
    return {
        p.name: p.default
        for p in signature.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "d_model"
    }


def check_options(name: str, given: dict[str, Any]) -> None:
    valid = options(name)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for mixer {name!r}; "
            f"valid options: {', '.join(sorted(valid)) or '(none)'}"
        )


def build(name: str, *, d_model: int, **mixer_options: Any):
    cls = get_class(name)
    check_options(name, mixer_options)
    if not isinstance(d_model, int) or d_model < 1:
        raise ValueError(f"d_model must be a positive integer, got {d_model!r}")
    return cls(d_model=d_model, **mixer_options)


def describe() -> list[dict[str, Any]]:
    """One entry per mixer: name, modes, default mode, options with defaults, docstring summary."""
    rows = []
    for name in available():
        cls = _REGISTRY[name]
        doc = (cls.__doc__ or "").strip().splitlines()
        rows.append(
            {
                "name": name,
                "modes": list(cls.modes),
                "default_mode": cls.default_mode,
                "options": options(name),
                "summary": doc[0] if doc else "",
            }
        )
    return rows
