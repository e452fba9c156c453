"""The one exception hierarchy: every kind is rebuilt as the same class, with its figures, from
what crosses a job queue; messages are never parsed to find the kind."""

import pytest

from engine.errors import KINDS, Busy, NotEnoughMemory, QuoteError, Refused, RenderFailed, rebuild
from engine.jobs.wire import result_from_json, result_json
from tests.helpers import result


@pytest.mark.parametrize(
    "error",
    [
        NotEnoughMemory(50.0, 57.0),
        Busy(2, 1, 120.0, 138.0, 40.0),
        RenderFailed("every render method failed"),
        QuoteError("internal error (KeyError); please try again"),
    ],
)
def test_an_error_crosses_the_queue_as_the_same_class_with_its_figures(error):
    again = rebuild(error.kind, str(error), error.details())
    assert type(again) is type(error) and str(again) == str(error)
    assert again.details() == error.details() and again.exit_code == error.exit_code


def test_busy_carries_what_its_parent_promises():
    busy = Busy(2, 1, 120.0, 138.0, 40.0)
    assert isinstance(busy, Refused) and busy.exit_code == 3
    assert (busy.running, busy.ahead, busy.needed_mb, busy.free_mb) == (2, 1, 138.0, 40.0)
    assert not isinstance(busy, NotEnoughMemory)  # waiting too long is not a machine too small


def test_every_kind_is_registered_once():
    assert len(KINDS) == len({cls.kind for cls in KINDS.values()})
    assert rebuild("no such kind", "x").__class__ is QuoteError


def test_the_result_json_carries_the_kind():
    failed = result("a" * 32, status="error", error="busy: ...", error_kind="busy")
    assert result_from_json(result_json(failed)).error_kind == "busy"
