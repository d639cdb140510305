"""Policy as code: reading one or more YAML files (several documents each) into one policy, and
writing it back. A bad file is rejected whole, naming the file and line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from stockade.config import format_loc, line_of, parse_yaml_all, yaml_sources
from stockade.model.errors import ConfigError

if TYPE_CHECKING:
    from stockade.firewall.policy.model import Policy


def _policy() -> type[Policy]:
    """The policy's model, imported on first use: the controller imports this module for
    ``diff_lines`` (its diffs of other documents) long before it reads a firewall policy."""
    from stockade.firewall.policy.model import Policy

    return Policy


def _documents(text: str, name: str) -> list[tuple[Any, yaml.Node]]:
    return [(v, n) for v, n in parse_yaml_all(text, name=name) if v is not None]


def _check(value: Any, node: yaml.Node, name: str, *, partial: bool) -> Policy:
    try:
        return _policy().model_validate(value, context={"partial": partial})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [p for p in err["loc"] if isinstance(p, (int, str))]
        line = line_of(node, loc)
        field = format_loc(loc)
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{name}:{line}: {field + ': ' if field else ''}{msg}") from None


def parse_texts(sources: Sequence[tuple[str, str]]) -> Policy:
    """Merge documents in order (groups, then rules, keep their order); validate the whole."""
    groups: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    origin: dict[str, str] = {}
    meta: dict[str, Any] | None = None
    options: dict[str, Any] = {}  # spec-wide settings: the first document giving one sets it
    for name, text in sources:
        for value, node in _documents(text, name):
            doc = _check(value, node, name, partial=True)
            meta = meta or doc.metadata.model_dump()
            for key in doc.spec.model_fields_set & {"virtualPatch"}:
                options.setdefault(key, getattr(doc.spec, key))
            for i, r in enumerate(doc.spec.rules):
                origin[r.name] = f"{name}:{line_of(node, ['spec', 'rules', i])}"
            groups += [g.model_dump(by_alias=True, exclude_defaults=True) for g in doc.spec.groups]
            rules += [r.model_dump(by_alias=True, exclude_defaults=True) for r in doc.spec.rules]
    merged = {"metadata": meta or {}, "spec": {"groups": groups, "rules": rules, **options}}
    try:
        return _policy().model_validate(merged)
    except ValidationError as exc:
        msg = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        where = next(
            (o for r, o in origin.items() if f"rule {r!r}" in msg),
            sources[0][0] if sources else "policy",
        )
        raise ConfigError(f"{where}: {msg}") from None


def load_files(paths: Sequence[Path]) -> Policy:
    return parse_texts(yaml_sources(paths, "policy"))


def dump(policy: Policy) -> str:
    """The canonical YAML of a policy (what ``policy export`` prints and the store keeps)."""
    data = policy.model_dump(by_alias=True, exclude_defaults=False)
    for g in data["spec"]["groups"]:
        g["selector"] = {k: v for k, v in g["selector"].items() if v not in (None, [], {})}
        if not g["dlp"]:
            del g["dlp"]
        if not g["waf"]:
            del g["waf"]
        if g["requireTLS"] == "none":
            del g["requireTLS"]
        if g["virtualPatch"] is None:
            del g["virtualPatch"]
    for r in data["spec"]["rules"]:
        if not r["protocols"]:
            del r["protocols"]
    if data["spec"]["virtualPatch"] == "propose":
        del data["spec"]["virtualPatch"]
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)


def diff_lines(
    old: str, new: str, *, old_name: str = "running", new_name: str = "files"
) -> list[str]:
    """A unified diff of two policies' canonical YAML (empty when applying ``new`` changes
    nothing); what ``policy diff`` prints and the controller's diff answers."""
    import difflib

    return list(
        difflib.unified_diff(old.splitlines(), new.splitlines(), old_name, new_name, lineterm="")
    )


def with_mode(policy: Policy, group: str, mode: str) -> Policy:
    """``policy`` with ``group`` switched to ``mode`` (validated like any policy); a ConfigError
    when the group is not there or the mode is not one."""
    data = policy.model_dump(by_alias=True)
    found = [g for g in data["spec"]["groups"] if g["name"] == group]
    if not found:
        raise ConfigError(f"no group {group!r} in the policy")
    found[0]["mode"] = mode
    try:
        return _policy().model_validate(data)
    except ValidationError as exc:
        msg = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"mode: {msg}") from None
