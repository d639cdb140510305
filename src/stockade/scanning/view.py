"""The merged view of an image's layers, computed from layer indexes alone (no blobs).

Layer ``j`` hides a path of a lower layer when it writes the same path, whites it out or one of its
parents, marks a parent opaque, or replaces a parent directory with a non-directory. Symlinks are
resolved inside the image root, one component at a time, as a kernel would in a chroot, except that
a relative link that climbs above the root is refused as hostile instead of being clamped.
"""

from __future__ import annotations

from dataclasses import dataclass

from stockade.model.errors import UnsafeImage
from stockade.scanning.layers import LayerIndex

_MAX_HOPS = 40


@dataclass(slots=True)
class _Shape:
    kinds: dict[str, str]
    links: dict[str, str]
    whiteouts: frozenset[str]
    opaque: frozenset[str]


def _ancestors(path: str) -> list[str]:
    """Strict ancestors of ``/a/b/c``: ``/a/b``, ``/a`` (the root is never whited out)."""
    out: list[str] = []
    while True:
        path = path.rpartition("/")[0]
        if not path:
            return out
        out.append(path)


class MergedView:
    def __init__(self, indexes: list[LayerIndex], what: str) -> None:
        self.what = what
        self.layers = [
            _Shape(i.kinds, i.links, frozenset(i.whiteouts), frozenset(i.opaque)) for i in indexes
        ]

    def visible(self, path: str, layer: int) -> bool:
        """Whether ``path`` as written by layer ``layer`` survives every layer above it."""
        ancestors = _ancestors(path)
        for upper in self.layers[layer + 1 :]:
            if path in upper.kinds or path in upper.whiteouts:
                return False
            for anc in ancestors:
                if anc in upper.whiteouts or anc in upper.opaque:
                    return False
                kind = upper.kinds.get(anc)
                if kind is not None and kind != "d":
                    return False
        return True

    def lookup(self, path: str) -> tuple[int, str] | None:
        """The layer and kind of ``path`` in the final view (no symlink following)."""
        for j in range(len(self.layers) - 1, -1, -1):
            kind = self.layers[j].kinds.get(path)
            if kind is not None:
                return (j, kind) if self.visible(path, j) else None
            if path in self.layers[j].whiteouts:
                return None
            if any(
                a in self.layers[j].opaque or a in self.layers[j].whiteouts
                for a in _ancestors(path)
            ):
                return None
        return None

    def link_target(self, path: str, layer: int) -> str:
        return self.layers[layer].links[path]

    def resolve(self, path: str) -> tuple[str, int, str] | None:
        """Follow symlinks (in any component) inside the root: (real path, layer, kind) or None.

        Raises UnsafeImage when a link climbs above the root.
        """
        pending = [p for p in path.split("/") if p]
        done: list[str] = []
        hops = 0
        found: tuple[int, str] | None = None
        while pending:
            part = pending.pop(0)
            if part == ".":
                continue
            if part == "..":
                if not done:
                    raise UnsafeImage(
                        f"symlink escapes the image root while resolving {path}", subject=self.what
                    )
                done.pop()
                continue
            current = "/" + "/".join([*done, part])
            found = self.lookup(current)
            if found is None:
                if pending:
                    done.append(part)  # tars may omit parent directories: an implicit dir
                    continue
                return None
            layer, kind = found
            if kind == "l":
                hops += 1
                if hops > _MAX_HOPS:
                    return None  # a loop: treat as dangling, as the kernel does (ELOOP)
                target = self.layers[layer].links[current]
                if target.startswith("/"):
                    done = []
                pending = [p for p in target.split("/") if p] + pending
                continue
            if kind == "h":
                # A hard link is a regular file; its bytes live under the link target's name.
                done.append(part)
                continue
            done.append(part)
        real = "/" + "/".join(done)
        final = self.lookup(real)
        if final is None:
            return None
        return real, final[0], final[1]

    def symlinks(self) -> list[tuple[str, int]]:
        """Every symlink visible in the final view, with its layer."""
        out = []
        for j, shape in enumerate(self.layers):
            for path, kind in shape.kinds.items():
                if kind == "l" and self.visible(path, j):
                    out.append((path, j))
        return out
