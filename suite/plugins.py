"""Discovery of domain plugins through the ``suite.domains`` entry-point group.

Discovery runs once per process and is cached. A plugin that fails to import is kept as a
broken entry with its error, so one bad plugin never takes the CLI down; duplicate names are
warned about and the first one wins.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from suite.domain import Domain
from suite.errors import UsageError

GROUP = "suite.domains"


@dataclass(frozen=True)
class DomainEntry:
    """One discovered plugin: its domain, or the error that kept it from loading."""

    name: str
    value: str
    domain: Domain | None
    error: str | None

    @property
    def ok(self) -> bool:
        """True when the plugin imported and gave a :class:`Domain`."""
        return self.domain is not None


def _load(ep: EntryPoint) -> DomainEntry:
    try:
        obj = ep.load()
        domain = obj() if isinstance(obj, type) else obj
        if not isinstance(domain, Domain):
            raise TypeError(f"{ep.value} is {type(domain).__name__}, not a suite.domain.Domain")
        return DomainEntry(ep.name, ep.value, domain, None)
    except Exception as exc:  # any failure of third-party code must be contained here
        return DomainEntry(ep.name, ep.value, None, f"{type(exc).__name__}: {exc}")


@functools.cache
def discover() -> dict[str, DomainEntry]:
    """Return every plugin of the group by name, loaded once per process."""
    found: dict[str, DomainEntry] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in found:
            warnings.warn(
                f"duplicate domain {ep.name!r} from {ep.value}; keeping {found[ep.name].value}",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        found[ep.name] = _load(ep)
    return dict(sorted(found.items()))


def get_domain(name: str) -> Domain:
    """Return the domain called ``name``.

    Raises:
        UsageError: no such domain, or the plugin is broken (the message carries its error).
    """
    entries = discover()
    entry = entries.get(name)
    if entry is None:
        known = ", ".join(entries) or "none installed"
        raise UsageError(f"unknown domain {name!r} (known: {known})")
    if entry.domain is None:
        raise UsageError(f"domain {name!r} is broken: {entry.error}")
    return entry.domain
