"""One definition per fact: a Result field is declared once, and the history's columns, its record,
the JSON, the CSV and the charts follow from it or are checked against it here; every choice the
engine takes is offered by the CLI and the pages, with a label."""

from dataclasses import fields, replace

from engine.app.charts import COLUMNS, DERIVED
from engine.app.cli import build_parser
from engine.app.labels import METHOD_LABELS, TIER_LABELS, TTS_LABELS
from engine.choices import ASPECTS, METHOD_CHOICES, TIER_CHOICES, TTS_CHOICES, WINDOWS
from engine.history import GenerationRecord
from engine.history.schema import generations
from engine.history.store import stored_values
from engine.jobs.wire import result_from_json, result_json
from engine.models import NOT_STORED, Attempt, Result
from tests.helpers import result


def test_every_stored_result_field_is_a_column_and_a_record_field():
    stored = {f.name for f in fields(Result)} - set(NOT_STORED)
    columns = {c.name for c in generations.columns}
    record = {f.name for f in fields(GenerationRecord)}
    assert stored <= columns, f"add these to engine/history/schema.py and a migration: {stored - columns}"
    assert columns == record, f"the record and the table differ: {columns ^ record}"
    assert set(stored_values(result("a" * 32))) == stored


def test_the_json_carries_every_field_and_comes_back_whole():
    done = result(
        "a" * 32, attempts=(Attempt("ffmpeg", "high", "ok", None, 120.0, 0.5, 300.0, predicted_peak_mb=124.0),)
    )
    data = result_json(done)
    assert set(data) == {f.name for f in fields(Result)} - {"timeline", "error", "error_kind"}
    assert result_from_json(data) == replace(done, timeline=())
    failed = result_json(result("b" * 32, status="error", error="x", error_kind="busy"))
    assert (failed["error"], failed["error_kind"]) == ("x", "busy")


def test_the_charts_and_csv_columns_are_record_fields():
    record = {f.name for f in fields(GenerationRecord)}
    assert set(COLUMNS) <= record | set(DERIVED), set(COLUMNS) - record - set(DERIVED)


def test_every_choice_is_offered_by_the_cli_and_labelled_on_the_pages():
    generate = build_parser()._subparsers._group_actions[0].choices["generate"]
    offered = {action.dest: tuple(action.choices or ()) for action in generate._actions}
    assert offered["tier"] == TIER_CHOICES and offered["method"] == METHOD_CHOICES
    assert offered["tts"] == TTS_CHOICES and offered["aspect"] == tuple(ASPECTS)
    assert set(TIER_LABELS) == set(TIER_CHOICES) and set(METHOD_LABELS) == set(METHOD_CHOICES)
    assert set(TTS_LABELS) == set(TTS_CHOICES)
    stats = build_parser()._subparsers._group_actions[0].choices["stats"]
    assert next(a.choices for a in stats._actions if a.dest == "window") == list(WINDOWS)


def test_every_attempt_field_is_a_column_and_a_record_field():
    from engine.history.records import AttemptRecord
    from engine.history.schema import attempts

    keys = {"generation_id", "number"}
    assert {f.name for f in fields(Attempt)} | keys == {c.name for c in attempts.columns}
    assert {f.name for f in fields(AttemptRecord)} == {c.name for c in attempts.columns}


def test_refusals_are_every_kind_turned_away_before_work():
    from engine.errors import Busy, InvalidInput, LimitReached, NotEnoughMemory, RenderFailed
    from engine.history.stats import REFUSALS

    assert {InvalidInput.kind, NotEnoughMemory.kind, Busy.kind, LimitReached.kind} <= REFUSALS
    assert RenderFailed.kind not in REFUSALS
