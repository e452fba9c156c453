"""Batch: a CSV or JSON Lines file of quotes becomes videos, with a progress bar and a zip at the end."""

import time
import uuid
from pathlib import Path

import streamlit as st

from engine.app.resources import shared_batches, shared_ledger, shared_limits, shared_store
from engine.app.visitor import visitor_id
from engine.errors import LimitReached
from engine.jobs.batch import CHOICES, FLAGS, PageBatch, Row, read_rows
from engine.models import Request, Result
from engine.pipeline import generate
from engine.settings import Settings

st.title("Batch")
settings = Settings.from_env()
st.caption(
    f"Upload a CSV with a `text` column, or a JSON Lines file; optional columns: {', '.join([*CHOICES, *FLAGS])} "
    f"(music: a bed's name). Up to **{settings.max_batch_rows} rows** per batch (`MAX_BATCH_ROWS`); rows are made "
    "one after another, and each counts toward the videos one visitor may make in 10 minutes."
)
KEEP_S = 3600.0  # a finished batch stays reachable (and its zip) this long
MAX_FILE_MB = 1  # a page batch is at most MAX_BATCH_ROWS rows: a megabyte is plenty


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


visitor = visitor_id()
batches = shared_batches()
for key, old in list(batches.items()):  # finished long ago: forgotten (the files stay under the quota's rule)
    if old.finished_at is not None and time.monotonic() - old.finished_at > KEEP_S:
        batches.pop(key, None)
# The batch's id rides in the address (?batch=...), so a reload, a new session, finds it again.
job: PageBatch | None = batches.get(st.query_params.get("batch", ""))
running = job is not None and not job.done
mine_running = any(b.visitor == visitor and not b.done for b in batches.values())


def read_upload(data: bytes, name: str) -> list[Row]:
    """The uploaded file's rows, read from a file of its own in DATA_DIR's temp folder (then removed)."""
    settings.temp_dir.mkdir(parents=True, exist_ok=True)
    path = settings.temp_dir / f"batch-upload-{uuid.uuid4().hex}{Path(name).suffix.lower()}"
    try:
        path.write_bytes(data)
        return read_rows(path, files=False, settings=settings)
    finally:
        path.unlink(missing_ok=True)


def run_row(request: Request) -> Result:
    """One row, counted by the visitor's limits like a video from the Generate page; a row that the
    limits hold back waits for its turn instead of failing."""
    while True:
        try:
            with shared_limits().hold(visitor):
                return generate(request, settings, store=shared_store(settings), ledger=shared_ledger(settings))
        except LimitReached:
            time.sleep(2.0)


upload = st.file_uploader(
    "Quotes file", type=["csv", "jsonl"], key="batch_file", disabled=running, max_upload_size=MAX_FILE_MB
)
if upload is not None and not running:
    try:
        rows = read_upload(upload.getvalue(), upload.name)
    except Exception as problem:  # the file's sentence (BadBatchFile names the line)
        st.error(sentence(str(problem)))
        rows = []
    if rows:
        valid = [row for row in rows if row.request is not None]
        st.markdown(f"**{len(rows)} rows**: {len(valid)} valid, {len(rows) - len(valid)} with a problem.")
        problems = [{"row": r.number, "line": r.line, "problem": r.error} for r in rows if r.request is None]
        if problems:
            st.dataframe(problems, hide_index=True, width="stretch")
        too_many = len(valid) > settings.max_batch_rows
        if too_many:
            st.warning(
                f"{len(valid)} valid rows is over this server's {settings.max_batch_rows}-row limit; split the file."
            )
        if mine_running:
            st.info("Your other batch is still running; start this one when it ends.")
        start_off = too_many or not valid or mine_running
        if st.button("Start the batch", type="primary", key="batch_start", disabled=start_off):
            batch_id = uuid.uuid4().hex
            folder = settings.outputs_dir / f"batch-{batch_id}"
            batches[batch_id] = PageBatch(valid, folder, run_row, visitor).start()
            st.query_params["batch"] = batch_id
            st.rerun()


def show(batch: PageBatch) -> None:
    entries = batch.entries()
    st.progress(len(entries) / max(1, len(batch.rows)), text=f"{len(entries)} of {len(batch.rows)} rows done")
    st.dataframe(
        [{"row": n, "status": e["status"], "output": Path(e["output"]).name if e.get("output") else "",
          "problem": e.get("error", "")} for n, e in entries],
        hide_index=True, width="stretch",
    )  # fmt: skip


@st.fragment(run_every=0.5)
def live(batch: PageBatch) -> None:
    if batch.done:
        st.rerun()  # the whole page: the zip to download
    show(batch)


if job is not None:
    if running:
        live(job)
    else:
        show(job)
        if job.error:
            st.error(sentence(job.error))
        elif job.report is not None and job.zip_path is not None:
            r = job.report
            st.success(f"{r.made} made, {r.failed} failed of {r.rows} rows.")
            st.download_button(
                "Download the videos and manifest (zip)", job.zip_path.read_bytes(), file_name="videos.zip",
                mime="application/zip", icon="⬇️", key="batch_zip",
            )  # fmt: skip
