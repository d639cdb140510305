"""``stockade up``'s lanes (stockade.lab.platform.side_by_side): the scan's commands and the
benchmarks' run at once, and a lane's error is raised once every lane has ended."""

from __future__ import annotations

import threading

import pytest

from stockade.lab.demo import DemoFailed
from stockade.lab.platform import side_by_side


def test_the_lanes_run_at_once() -> None:
    both = threading.Barrier(
        2, timeout=10
    )  # broken (an error) if the lanes ran one after the other
    ran: list[str] = []

    def lane(name: str) -> None:
        both.wait()
        ran.append(name)

    side_by_side(lambda: lane("image"), lambda: lane("benchmarks"))
    assert sorted(ran) == ["benchmarks", "image"]


def test_an_error_is_raised_after_the_other_lane_has_ended() -> None:
    ended = threading.Event()

    def failing() -> None:
        raise DemoFailed("stockade scan image exited 3: no such image")

    def slower() -> None:
        threading.Event().wait(0.3)
        ended.set()

    with pytest.raises(DemoFailed, match="exited 3"):
        side_by_side(failing, slower)
    assert ended.is_set()
