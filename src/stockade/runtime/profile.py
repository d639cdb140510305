"""Process profiles as policy as code (YAML, strict: unknown fields and bad values are refused
naming the file and line):

```yaml
apiVersion: stockade.dev/v1
kind: ProcessProfiles
spec:
  profiles:
    - name: shop.orders                 # a slug
      selector: {namespace: shop, pods: [orders]}   # globs; labels must all match
      mode: protect                     # discover | monitor | protect
      zeroDrift: false                  # true: only the image's own executables may run
      files: [/app/config/*]            # sensitive paths beyond the built-in ones (globs)
      processes:
        - {path: /usr/bin/openssl, sha256: 9f2c..., parent: /usr/bin/bash}
```

A process matches an entry when path and hash are equal and the parent is the entry's parent
(``*`` for any; ``""`` for a process entered from outside the workload).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stockade.config import parse_yaml_all, read_text, validate, yaml_sources
from stockade.identity import Workload
from stockade.model.atomicfile import write_atomically
from stockade.model.errors import ConfigError

Mode = Literal["discover", "monitor", "protect"]
_SLUG = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?\Z")
_SHA = re.compile(r"^[0-9a-f]{64}\Z")
MAX_PROCESSES = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Selector(_Strict):
    namespace: str | None = None
    pods: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)

    def matches(self, w: Workload) -> bool:
        if self.namespace is not None and not fnmatchcase(w.namespace, self.namespace):
            return False
        if self.pods and not any(fnmatchcase(w.name, p) for p in self.pods):
            return False
        labels = dict(w.labels)
        return all(labels.get(k) == v for k, v in self.labels.items())


class Process(_Strict):
    path: str
    sha256: str
    parent: str = "*"

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/") or len(v) > 4096 or "\0" in v:
            raise ValueError("must be an absolute path")
        return v

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        if not _SHA.match(v):
            raise ValueError("must be 64 lowercase hex digits")
        return v

    def allows(self, path: str, sha256: str, parent: str) -> bool:
        return self.path == path and self.sha256 == sha256 and self.parent in ("*", parent)


class Profile(_Strict):
    name: str
    selector: Selector
    mode: Mode = "discover"
    zero_drift: bool = Field(default=False, alias="zeroDrift")
    processes: list[Process] = Field(default_factory=list, max_length=MAX_PROCESSES)
    # more sensitive paths (globs) than the built-in ones, for file monitoring
    files: list[str] = Field(default_factory=list, max_length=256)

    @field_validator("files")
    @classmethod
    def _files(cls, v: list[str]) -> list[str]:
        for g in v:
            if not g.startswith("/") or len(g) > 4096 or "\0" in g:
                raise ValueError(f"{g[:80]!r} must be an absolute path or glob")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _SLUG.match(v):
            raise ValueError("must be a slug (lowercase letters, digits, '.', '-')")
        return v

    def allows(self, path: str, sha256: str, parent: str) -> bool:
        return any(p.allows(path, sha256, parent) for p in self.processes)


class Spec(_Strict):
    profiles: list[Profile] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Spec:
        seen: set[str] = set()
        for p in self.profiles:
            if p.name in seen:
                raise ValueError(f"profile {p.name!r} is defined twice")
            seen.add(p.name)
        return self


class Profiles(_Strict):
    api_version: Literal["stockade.dev/v1"] = Field(default="stockade.dev/v1", alias="apiVersion")
    kind: Literal["ProcessProfiles"] = "ProcessProfiles"
    spec: Spec = Field(default_factory=Spec)

    def for_workload(self, w: Workload) -> Profile | None:
        """The first profile whose selector matches."""
        return next((p for p in self.spec.profiles if p.selector.matches(w)), None)


def parse_texts(sources: Sequence[tuple[str, str]]) -> Profiles:
    """Every document of every source, merged in order (a name defined twice is refused)."""
    merged: list[Profile] = []
    origin: dict[str, str] = {}
    for name, text in sources:
        for value, node in parse_yaml_all(text, name=name):
            if value is None:
                continue
            for p in validate(Profiles, value, node, name=name).spec.profiles:
                if p.name in origin:
                    raise ConfigError(
                        f"{name}: profile {p.name!r} is already defined in {origin[p.name]}"
                    )
                origin[p.name] = name
                merged.append(p)
    return Profiles(spec=Spec(profiles=merged))


def load_files(paths: Sequence[Path]) -> Profiles:
    return parse_texts(yaml_sources(paths, "profile"))


def load_state(path: Path) -> Profiles:
    """The applied profiles (an empty set when none were applied yet)."""
    if not path.exists():
        return Profiles()
    return parse_texts([(str(path), read_text(path))])


def dump(profiles: Profiles) -> str:
    """The canonical YAML (what export prints and apply keeps)."""
    data = profiles.model_dump(by_alias=True)
    for p in data["spec"]["profiles"]:
        p["selector"] = {k: v for k, v in p["selector"].items() if v not in (None, [], {})}
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)


def save_state(profiles: Profiles, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, dump(profiles).encode("utf-8"))


def diff_lines(old: Profiles, new: Profiles) -> list[str]:
    return text_diff(dump(old), dump(new))


def merge(sets: Sequence[Profiles]) -> Profiles:
    """One set of profiles from several (what nodes learned): a profile named in more than one
    keeps the first one's selector, mode and options and every process of each, once."""
    by_name: dict[str, Profile] = {}
    for profiles in sets:
        for p in profiles.spec.profiles:
            have = by_name.get(p.name)
            if have is None:
                by_name[p.name] = p
                continue
            seen = {(q.path, q.sha256, q.parent) for q in have.processes}
            extra = [q for q in p.processes if (q.path, q.sha256, q.parent) not in seen]
            processes = [*have.processes, *extra][:MAX_PROCESSES]
            files = list(dict.fromkeys([*have.files, *p.files]))[:256]
            by_name[p.name] = have.model_copy(update={"processes": processes, "files": files})
    return Profiles(spec=Spec(profiles=list(by_name.values())))


def text_diff(
    old: str, new: str, *, old_name: str = "running", new_name: str = "files"
) -> list[str]:
    """A unified diff of two canonical texts (empty when they are the same)."""
    return list(
        difflib.unified_diff(old.splitlines(), new.splitlines(), old_name, new_name, lineterm="")
    )
