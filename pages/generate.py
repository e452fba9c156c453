"""Generate: a quote in, a narrated video out, with the tuning team's overrides and live memory."""

import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import streamlit as st

from engine.app.labels import (
    CAPTION_STYLE_LABELS,
    METHOD_LABELS,
    MUSIC_LABELS,
    PRESET_LABELS,
    SPEED_LABELS,
    TIER_LABELS,
    TTS_LABELS,
)  # fmt: skip
from engine.app.resources import shared_ledger, shared_limits, shared_store
from engine.app.routes import video_url
from engine.app.tables import markdown_table
from engine.app.timelines import live_figure
from engine.app.visitor import visitor_id
from engine.choices import (
    ASPECTS,
    CAPTION_STYLES,
    METHOD_CHOICES,
    MUSIC_CHOICES,
    PRESETS,
    SPEEDS,
    TIER_CHOICES,
    TTS_CHOICES,
)  # fmt: skip
from engine.errors import InvalidInput, LimitReached, Refused
from engine.jobs.local import BackgroundTask, GenerationView, LocalGeneration, RunningGeneration
from engine.memory.plan import Plan, preview
from engine.memory.tiers import frame_rate
from engine.models import Request, Result
from engine.render.sweep import sweep
from engine.settings import Settings
from engine.speech import languages_for
from engine.visuals.background import PALETTE

st.title("Quote to Speak")
st.caption("Type a quote; get a narrated video. Rendering adapts to the memory this server really has.")
settings = Settings.from_env()
store = shared_store(settings)
job: RunningGeneration | None = st.session_state.get("generation")
busy = job is not None and not job.done


def show_plan(plan: Plan, tier: str) -> None:
    """What the request would get now: the tier and why, its size, its predicted cost."""
    t, cost = plan.tier, plan.predicted
    fps = frame_rate(plan.request.preset, t)
    if tier == "auto":
        st.caption(f"Memory now gives **{t.name}** ({plan.policy} policy): {plan.reason}.")
    width, height = plan.size
    st.caption(
        f"Output: **{width}×{height}**, up to {t.video_kbps}k video, {t.audio_kbps}k audio, {fps} fps. "
        f"Predicted peak **{cost.peak_mb:.0f} MB** ({cost.describe()}) against a render budget of "
        f"**{plan.capacity_mb:.0f} MB**, about {cost.wall_s(plan.duration_s):.1f} s to render; "
        f"the seed's fixed thresholds would have chosen {plan.seed_tier}."
    )
    if plan.too_small:
        st.warning(f"{plan.too_small.capitalize()}.")


quote_col, tuning_col = st.columns([3, 2], gap="large")
with quote_col:
    text = st.text_area(
        "Quote", key="text", max_chars=settings.max_text_chars, height=150,
        placeholder="Stay hungry. Stay foolish.",
    )  # fmt: skip
    author = st.text_input("Author", key="author", max_chars=120, placeholder="Steve Jobs")
    tts_col, lang_col = st.columns(2)
    tts = tts_col.selectbox(
        "Speech engine", TTS_CHOICES, key="tts", format_func=TTS_LABELS.get,
        index=TTS_CHOICES.index(settings.tts_engine),
    )  # fmt: skip
    languages = languages_for(tts)
    default_lang = next((c for c in ("en", "en-us", "en-gb") if c in languages), next(iter(languages)))
    if st.session_state.get("lang") not in languages:
        st.session_state["lang"] = default_lang
    lang = lang_col.selectbox("Language", list(languages), key="lang", format_func=lambda c: languages[c])
    speed = st.segmented_control(
        "Speaking rate", SPEEDS, key="speed", default="normal", format_func=SPEED_LABELS.get
    ) or "normal"  # fmt: skip
    preset_col, aspect_col = st.columns(2)
    preset = preset_col.selectbox(
        "Platform", ["none", *PRESETS], key="preset", format_func=PRESET_LABELS.get,
        help="Sets the frame (and 30 fps for Reels, TikTok and Shorts); the tier still sets the size.",
    )  # fmt: skip
    aspect = aspect_col.segmented_control(
        "Format", list(ASPECTS), key="aspect", default="16:9", disabled=preset != "none"
    ) or "16:9"  # fmt: skip
    if preset != "none":
        aspect = PRESETS[preset][0]
    look_col, upload_col = st.columns(2)
    with look_col:
        shade = st.selectbox("Background", list(PALETTE), key="background", format_func=str.capitalize)
        captions = st.toggle("Captions", key="captions", help="Highlight the words while they are spoken.")
        caption_style = st.segmented_control(
            "Caption style", CAPTION_STYLES, key="caption_style", default="phrase",
            format_func=CAPTION_STYLE_LABELS.get, disabled=not captions,
        ) or "phrase"  # fmt: skip
        subtitles = st.toggle(
            "Subtitles", key="subtitles", help="An .srt and a .vtt to download, and a track in the MP4."
        )
        motion = st.toggle("Motion", key="motion", help="Fade-in and slow zoom, rendered by MoviePy.")
    with upload_col:
        upload = st.file_uploader(
            "Background picture (optional)", type=["jpg", "jpeg", "png", "webp"], key="upload",
            help="JPEG, PNG or WebP under 10 MB; cropped to fill the card and darkened.",
        )  # fmt: skip
        music = st.selectbox(
            "Music", [*MUSIC_CHOICES, "upload"], key="music", format_func=MUSIC_LABELS.get,
            help="Under the voice, ducked while it speaks; the mix is mastered like the speech.",
        )  # fmt: skip
        music_file = None
        if music == "upload":
            music_file = st.file_uploader(
                "Music file", type=["mp3", "wav", "ogg", "m4a"], key="music_upload", max_upload_size=20,
                help="MP3, WAV, OGG or M4A, under 20 MB and 10 minutes; looped or cut to the speech.",
            )  # fmt: skip
            if music_file is None:
                st.caption("Choose a file, or the video is made without music.")

with tuning_col:
    st.markdown("**Tuning**")
    tier = st.radio("Quality tier", TIER_CHOICES, key="tier", format_func=TIER_LABELS.get, horizontal=True)
    method = st.radio("Render method", METHOD_CHOICES, key="method", format_func=METHOD_LABELS.get, horizontal=True)
    no_fallback = st.checkbox(
        "No fallback (run this method alone)", key="no_fallback", disabled=method == "auto",
        help="For tuning: the chosen method runs alone and the generation fails if it fails.",
    )  # fmt: skip
    request = Request(
        text=text, author=author, lang=lang, tts=tts, speed=speed, tier=tier, method=method,
        fallback=not (no_fallback and method != "auto"), aspect=aspect, preset=None if preset == "none" else preset,
        captions=captions, caption_style=caption_style, subtitles=subtitles, motion=motion,
        background=shade, background_image=upload.getvalue() if upload is not None else None,
        music="none" if music == "upload" and music_file is None else music,
        music_upload=music_file.getvalue() if music == "upload" and music_file is not None else None,
    )  # fmt: skip
    ledger = shared_ledger(settings)
    try:
        show_plan(preview(request, settings, store, ledger), tier)
    except InvalidInput as problem:  # the text as typed so far; Generate refuses it with the same sentence
        st.caption(f"{str(problem).capitalize()}.")


clicked = st.button("Generate video", type="primary", disabled=busy, key="generate", width="stretch")
if clicked:
    visitor = (shared_limits(), visitor_id())
    if settings.broker_url:  # the render runs on a Celery worker, which records it in the shared history
        from engine.jobs.remote import RemoteGeneration  # Celery is loaded only where a queue is used

        try:
            st.session_state["generation"] = RemoteGeneration(request, settings).start(visitor)
            busy = True
        except LimitReached as refusal:
            st.warning(f"{str(refusal).capitalize()}.")
    else:
        st.session_state["generation"] = LocalGeneration(request, settings, store, ledger, visitor).start()
        busy = True
    job = st.session_state.get("generation")


def show_progress(view: GenerationView) -> None:
    st.markdown(f"**{view.stage.capitalize()}**: {view.message} · {view.elapsed_s:.1f} s")
    budget = view.samples[-1].budget_mb if view.samples else None
    if view.samples and view.elapsed_s >= CHART_AFTER_S:
        st.plotly_chart(live_figure(view.samples, budget), key="live-chart", width="stretch")
    for attempt in view.attempts:
        if attempt.status != "ok":
            st.warning(f"{attempt.method} at {attempt.tier} tier: {attempt.status}, {attempt.error}. Falling back.")


POLL_S = 0.5
# A generation done sooner has no memory curve worth watching, and the chart's first drawing loads
# Plotly's script in the browser: the video came a second later when it did (measured, 1080p).
CHART_AFTER_S = 1.0


@st.fragment(run_every=POLL_S)
def live_progress() -> None:
    current: RunningGeneration | None = st.session_state.get("generation")
    if current is None:
        return
    view = current.snapshot()
    if view.done:
        st.rerun()  # the whole page, to show the result and enable the form again
    show_progress(view)
    # Then wait for the end until the next poll is due: the result shows the moment it is ready, not
    # up to a poll later (0.25 s on average), and a wait holds no GIL from the generation. Only here:
    # a queued job's wait polls Redis. This runs last on the page (see `progress_slot`).
    if isinstance(current, LocalGeneration) and current.wait(POLL_S - 0.05):
        st.rerun()


def absolute(path: str) -> str:
    """st.video needs an absolute URL to stream from our route instead of loading the file."""
    here = urlsplit(st.context.url or "http://localhost:8501")
    return f"{here.scheme}://{here.netloc}{path}"


def show_result(result: Result) -> None:
    url = absolute(video_url(result.output))
    st.success(f"Done in {result.wall_s:.1f} s: {result.width}×{result.height}, {result.duration_s:.1f} s of video.")
    for note in result.notes:
        st.info(note.capitalize() + ".")
    st.video(url)
    downloads = st.columns(4)
    downloads[0].link_button("Download MP4", f"{url}?download=1", icon="⬇️")
    for col, (label, path, mime) in zip(downloads[1:], sidecars(result), strict=False):
        if path.is_file():
            col.download_button(label, path.read_bytes(), file_name=path.name, mime=mime, icon="⬇️")
    cols = st.columns(4)
    cols[0].metric("Tier", result.tier)
    cols[1].metric("Method", result.method)
    cols[2].metric("Peak memory", f"{result.peak_rss_mb:.0f} MB")
    cols[3].metric("Time", f"{result.wall_s:.1f} s")
    show_report(result)


def sidecars(result: Result) -> list[tuple[str, Path, str]]:
    """The files beside the video: its cover, and its subtitles when asked."""
    found = [("Cover (JPEG)", result.cover, "image/jpeg")] if result.cover else []
    mimes = {".srt": "application/x-subrip", ".vtt": "text/vtt"}
    return found + [(f"Subtitles ({p.suffix[1:].upper()})", p, mimes[p.suffix]) for p in result.subtitles]


def show_report(result: Result) -> None:
    with st.expander("Report", expanded=result.status != "ok"):
        speech = result.tts_engine or "-"
        if result.tts_fallback_reason:
            speech += f" (after {result.tts_fallback_reason})"
        render_s = result.stage_s.get("render")
        rows = {
            "tier and why": f"{result.tier or '-'}: {result.tier_reason or '-'}",
            "policy": f"{result.tier_policy or '-'}; the seed's thresholds would have chosen {result.seed_tier or '-'}",
            "resolution": f"{result.width}×{result.height}" if result.width else "-",
            "bitrates": f"{result.video_kbps}k video, {result.audio_kbps}k audio" if result.video_kbps else "-",
            "size": f"{result.size_bytes / 1024:.0f} KB" if result.size_bytes else "-",
            "memory before": f"{result.available_mb:.0f} MB available, render budget {result.budget_mb:.0f} MB",
            "waited for memory": f"{result.stage_s.get('wait', 0.0):.1f} s",
            "picture quality": f"SSIM {result.ssim:.4f}, PSNR {result.psnr_db:.1f} dB" if result.ssim else "-",
            "predicted against actual": (
                f"peak {result.predicted_peak_mb:.0f} MB ({result.prediction_source}) vs {result.peak_rss_mb:.0f} MB; "
                f"render {result.predicted_wall_s:.1f} s vs {render_s:.1f} s"
                if result.predicted_peak_mb and result.predicted_wall_s is not None and render_s is not None
                else "-"
            ),
            "speech engine": speech + (f", peak {result.tts_peak_mb:.0f} MB" if result.tts_peak_mb else ""),
            "sound": (
                f"{result.loudness_lufs:.1f} LUFS integrated, true peak {result.true_peak_dbtp:.1f} dBTP, "
                f"spoken {result.speed}"
                if result.loudness_lufs is not None and result.true_peak_dbtp is not None
                else "-"
            ),
            "stage times": ", ".join(f"{k} {v:.2f} s" for k, v in result.stage_s.items()),
        }
        st.markdown(markdown_table([{"": name, "value": value} for name, value in rows.items()]))
        if result.attempts:
            st.markdown(markdown_table([
                {"#": n, "method": a.method, "tier": a.tier, "outcome": a.status, "peak MB": a.peak_rss_mb,
                 "budget MB": a.budget_mb, "time s": a.wall_s, "reason": a.error or ""}
                for n, a in enumerate(result.attempts, start=1)
            ]))  # fmt: skip


progress_slot = st.container()  # a running generation's progress: filled at the page's end
if job is not None and not busy:
    view = job.snapshot()
    if view.result is not None:
        show_result(view.result)
    elif view.error is not None:
        if isinstance(view.error, Refused):  # turned away before any work: not a failure of the video
            st.warning(f"{str(view.error).capitalize()}.")
        else:
            st.error(str(view.error))
        if view.error.result is not None and view.error.result.attempts:
            show_report(view.error.result)


with st.expander("Compare every tier and method (for tuning)"):
    st.caption(
        "Renders the quote above at high, medium and low with MoviePy and FFmpeg, and once as the emergency "
        "render: memory, time, size and picture quality side by side, with a frame of each to compare by eye."
    )
    task: BackgroundTask | None = st.session_state.get("sweep")
    if st.button(
        "Run the comparison", key="sweep_run", disabled=(task is not None and not task.done) or not text.strip()
    ):
        frames = settings.temp_dir / f"sweep-{uuid.uuid4().hex}"
        task = BackgroundTask(
            sweep,
            request.text.strip(),
            request.author.strip(),
            settings,
            frames,
            ledger,
            (shared_limits(), visitor_id()),
        ).start()
        st.session_state["sweep"] = task
        st.session_state.pop("sweep_frames", None)

    @st.fragment(run_every=1.0)
    def sweep_progress() -> None:
        current: BackgroundTask | None = st.session_state.get("sweep")
        if current is None:
            return
        if current.done:
            st.rerun()
        st.caption(" · ".join(current.lines) or "starting…")

    if task is not None and not task.done:
        sweep_progress()
    elif task is not None and task.error is not None:
        shutil.rmtree(task.args[3], ignore_errors=True)  # the frames folder of a sweep that did not finish
        if isinstance(task.error, Refused):
            st.warning(f"{str(task.error).capitalize()}.")
        else:
            st.error(f"The comparison failed: {task.error}")
    elif task is not None:
        if "sweep_frames" not in st.session_state:  # read once, then the scratch folder goes
            st.session_state["sweep_frames"] = [f.read_bytes() if f.exists() else None for _, f in task.result]
            shutil.rmtree(task.result[0][1].parent, ignore_errors=True)
        cells = task.result
        st.dataframe(
            [
                {"tier": c.tier, "method": c.method, "size": f"{c.width}×{c.height}", "outcome": c.error or c.status,
                 "peak MB": c.peak_rss_mb, "time s": c.wall_s, "file KB": round(c.size_bytes / 1024), "SSIM": c.ssim,
                 "PSNR dB": c.psnr_db}
                for c, _ in cells
            ],
            hide_index=True, width="stretch", key="sweep_table",
        )  # fmt: skip
        columns = st.columns(3)
        for index, ((cell, _), frame) in enumerate(zip(cells, st.session_state["sweep_frames"], strict=True)):
            if frame is not None:
                columns[index % 3].image(frame, caption=f"{cell.tier} · {cell.method}", width="stretch")


if busy:
    with progress_slot:
        live_progress()
