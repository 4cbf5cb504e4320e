"""A small generic registry of named objects, filled lazily from Python entry points.

Objects are registered by name, either directly (``register``, usable as a decorator) or as an
entry point (``"module:attr"`` strings resolved only when the name is first requested), in the
style of gymnasium's env registry. Unknown names produce one line listing the installed choices
and a close match.
"""

from __future__ import annotations

import difflib
import importlib.metadata as metadata
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rlplug.errors import PluginError

T = TypeVar("T")


@dataclass
class Entry:
    """One registered name: where it comes from and, once loaded, the object or the load error."""

    name: str
    target: str  # "module:attr" or repr of a directly registered object
    distribution: str  # distribution that declared it ("<code>" when registered directly)
    version: str
    obj: Any = None
    error: str | None = None  # one-line reason the entry point failed to load
    error_traceback: str | None = field(default=None, repr=False)
    loaded: bool = False


def suggest(name: str, choices: list[str]) -> str:
    """' Did you mean 'x'?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


class Registry(Generic[T]):
    """Named objects of one kind (algorithms, networks, executors, ...).

    ``kind`` is used in messages ("unknown algo 'x'"); ``group`` is the entry-point group read by
    :meth:`load_entry_points`; ``check`` validates a loaded object (e.g. a subclass check) and
    raises ``TypeError`` with a reason when it does not fit the contract.
    """

    def __init__(self, kind: str, group: str | None = None, check: Callable[[Any], None] | None = None):
        self.kind = kind
        self.group = group
        self._check = check
        self._entries: dict[str, Entry] = {}
        self._scanned = False

    # -- filling ---------------------------------------------------------------------------
    def register(self, name: str, obj: T | None = None, *, distribution: str = "<code>",
                 version: str = "") -> Any:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator."""
        if obj is None:
            def decorator(o: T) -> T:
                self.register(name, o, distribution=distribution, version=version)
                return o
            return decorator
        self._add(Entry(name, repr(obj), distribution, version, obj=obj, loaded=True))
        return obj

    def _add(self, entry: Entry) -> None:
        old = self._entries.get(entry.name)
        if old is not None and old.distribution != entry.distribution:
            raise PluginError(
                f"{self.kind} '{entry.name}' is registered twice: by {old.distribution} "
                f"({old.target}) and by {entry.distribution} ({entry.target}); uninstall one of them")
        if old is not None and old.target != entry.target:
            raise PluginError(
                f"{self.kind} '{entry.name}' is registered twice by {entry.distribution} "
                f"({old.target} and {entry.target}); rename one of them")
        self._entries[entry.name] = entry

    def load_entry_points(self) -> None:
        """Read this registry's entry-point group once; nothing is imported yet."""
        if self._scanned or self.group is None:
            return
        for ep in metadata.entry_points(group=self.group):
            dist = ep.dist.name if ep.dist is not None else "<unknown>"
            version = ep.dist.version if ep.dist is not None else ""
            self._add(Entry(ep.name, ep.value, dist, version))
        # Only now: after a duplicate-name error the next call must fail the same way, not
        # return the half-read group.
        self._scanned = True

    # -- reading ---------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Sorted names of everything registered (loaded or not)."""
        self.load_entry_points()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        """All entries, sorted by name (for listings)."""
        self.load_entry_points()
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def get(self, name: str) -> T:
        """The object registered as ``name``, importing its plugin on first use."""
        names = self.names()
        if name not in self._entries:
            installed = ", ".join(names) if names else "none installed"
            raise PluginError(f"unknown {self.kind} '{name}'; installed: {installed}.{suggest(name, names)}")
        entry = self.resolve(name)
        if entry.error is not None:
            raise PluginError(f"{self.kind} '{name}' from {entry.distribution} {entry.version} "
                              f"cannot be used: {entry.error}")
        return entry.obj

    def resolve(self, name: str) -> Entry:
        """Load ``name``'s entry point (once) and return its entry, with ``error`` set on failure."""
        entry = self._entries[name]
        if entry.loaded:
            return entry
        entry.loaded = True
        try:
            module_name, _, attr = entry.target.partition(":")
            obj: Any = __import__(module_name, fromlist=["_"])
            for part in filter(None, attr.split(".")):
                obj = getattr(obj, part)
            if self._check is not None:
                self._check(obj)
            entry.obj = obj
        except Exception as exc:  # a broken plugin must not break the others
            entry.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            entry.error_traceback = traceback.format_exc()
        return entry
