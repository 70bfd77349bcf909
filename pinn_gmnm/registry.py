"""A small name → object registry, used for problems, models, samplers and targets.

Strings from the command line or a config file are turned into objects here, in one
place, with a helpful error for names that are not known.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import GMNMError, unknown

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object with the one-line summary shown by ``gmnm-pde list``."""

    name: str
    obj: T
    summary: str
    group: str = ""


def first_line(doc: str | None) -> str:
    """The first non-empty line of a docstring (its summary), or an empty string."""
    for line in (doc or "").strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


class Registry(Generic[T]):
    """Names to objects, with "did you mean" errors for unknown names.

    ``loader`` is called once, on first lookup, to import the built-in entries (for
    example the problem catalogue) so that importing the library has no side effects.
    """

    def __init__(self, kind: str, loader: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._loader = loader
        self._loaded = loader is None

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            assert self._loader is not None
            self._loader()

    def add(self, name: str, obj: T, summary: str = "", *, group: str = "",
            replace: bool = False) -> T:
        """Register ``obj`` under ``name``; re-registering a name needs ``replace=True``."""
        if not name or name != name.strip():
            raise GMNMError(f"{self.kind} name must be a non-empty word, got {name!r}")
        if name in self._entries and not replace:
            raise GMNMError(
                f"{self.kind} '{name}' is already registered; pass replace=True to replace it"
            )
        self._entries[name] = Entry(name, obj, summary, group)
        return obj

    def remove(self, name: str) -> None:
        """Unregister ``name`` (an unknown name is the usual error)."""
        self.entry(name)
        del self._entries[name]

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise unknown(self.kind, name, self._entries) from None

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        self._load()
        return iter(sorted(self._entries.values(), key=lambda e: (e.group, e.name)))

    def names(self) -> list[str]:
        return [e.name for e in self]
