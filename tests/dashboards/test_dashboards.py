"""The sweep dashboard, built from a real MLflow tracking server holding a sweep logged the way
the sweep logs one (SweepTracker, the same metric keys and artifacts), without training.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from dashboards.cli import main as dashboard_main
from dashboards.page import build_dashboard, trial_page_name
from dashboards.publish import publish_dashboard, publish_pareto_figures
from dashboards.render import write_chart
from dashboards.trials import curves_chart, widths_chart
from sweep.pareto import pareto_front, pick
from sweep.results import publish_pareto
from sweep.store import SweepStore, results_table
from sweep.tracking import SweepTracker
from tests.dashboards.pages import figure_data
from tests.sweep.conftest import free_port, mlflow_server  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LAYERS = {"conv1": 16, "conv2": 32, "dense": 64, "logits": 10}
SEED_COST = 1.0e6


# --- a sweep logged like the sweep logs it ------------------------------------------------
@dataclass
class FakeSweep:
    """What populate_sweep logged: enough to know what the dashboard must draw."""

    uri: str
    name: str
    experiment_id: str
    parent_id: str
    finished: dict[str, dict] = field(default_factory=dict)  # trial id -> spec
    failed: list[str] = field(default_factory=list)
    run_ids: dict[str, str] = field(default_factory=dict)

    def finished_of(self, target: str, baseline: bool | None = None) -> list[str]:
        return [
            t
            for t, s in self.finished.items()
            if s["target"] == target
            and (baseline is None or (s["algorithm"] == "baseline") == baseline)
        ]


def _structure(keep: float, step: int) -> dict:
    layers, cost = {}, 0.0
    for i, (name, original) in enumerate(LAYERS.items()):
        # the logits layer keeps its width, as keep_full_width does for output layers
        alive = original if name == "logits" else max(1, round(original * keep * (1 - 0.1 * i)))
        layers[name] = {
            "alive": alive,
            "original": original,
            "class": "Dense" if name in ("dense", "logits") else "Conv2D",
            "alive_channels": list(range(alive)),
            "op": f"{name}/op",
        }
        cost += alive / original
    learned = SEED_COST * cost / len(LAYERS)
    return {
        "schema_version": 1,
        "model": {"name": "plain", "fingerprint": "f00d"},
        "regularizer": "GammaFlops",
        "step": step,
        "cost": {"name": "FLOPs", "seed": SEED_COST, "learned": learned},
        "layers": layers,
        "flat": {f"{n}/op": d["alive"] for n, d in layers.items()},
    }


def populate_sweep(uri: str, name: str, tmp: Path, epochs: int = 3) -> FakeSweep:
    """Logs a sweep: two algorithms x three strengths and three baseline widths on one target,
    two trials and a baseline on a second target, and one failed trial."""
    tracker = SweepTracker(uri, name)
    specs = []
    for target in ("flops", "latency"):
        multipliers = (0.5, 1.0, 2.0) if target == "flops" else (1.0, 2.0)
        algorithms = ("gamma", "group_lasso") if target == "flops" else ("gamma",)
        for algorithm in algorithms:
            for m in multipliers:
                specs.append(
                    {
                        "trial_id": f"{algorithm}-{target}-m{m:g}-s0",
                        "algorithm": algorithm,
                        "target": target,
                        "strength": m / SEED_COST,
                        "multiplier": m,
                        "seed": 0,
                        "hardware": "P100",
                        "keep": {0.5: 0.8, 1.0: 0.55, 2.0: 0.3}[m]
                        * (0.9 if algorithm == "group_lasso" else 1.0),
                    }
                )
        widths = (0.25, 0.5, 1.0) if target == "flops" else (0.5,)
        for w in widths:
            specs.append(
                {
                    "trial_id": f"baseline-{target}-w{w:g}-s0",
                    "algorithm": "baseline",
                    "target": target,
                    "width": w,
                    "seed": 0,
                    "hardware": "P100",
                    "keep": w,
                }
            )
    specs.append(
        {
            "trial_id": "gamma-flops-m20-s0",
            "algorithm": "gamma",
            "target": "flops",
            "strength": 20 / SEED_COST,
            "multiplier": 20.0,
            "seed": 0,
            "hardware": "P100",
            "keep": 0.0,
            "fail": True,
        }
    )
    sweep = FakeSweep(uri, name, tracker.experiment_id, tracker.parent_id)
    for spec in specs:
        trial = spec["trial_id"]
        params = {k: v for k, v in spec.items() if k not in ("keep", "fail")}
        sweep.run_ids[trial] = tracker.start(trial, params)
        keep, baseline = spec["keep"], spec["algorithm"] == "baseline"
        if not baseline:
            for epoch in range(1, epochs + 1):
                # cost shrinks towards the learned structure; accuracy dips with the strength
                share = 1 - (1 - keep) * epoch / epochs
                metrics = {
                    "task_loss": 1.0 / epoch,
                    "regularization_loss": 0.1 * keep,
                    "loss": 1.0 / epoch + 0.1,
                    "accuracy": 0.6 + 0.1 * epoch,
                    "val_accuracy": 0.55 + 0.1 * epoch - 0.05 * (1 - keep),
                    "cost": SEED_COST * max(share, 0.001),
                    "cost_fraction": max(share, 0.001),
                    "alive_fraction": share,
                    "strength": spec["strength"],
                }
                logged = {f"learn/{k}": v for k, v in metrics.items()}
                logged |= {f"alive/{layer}": share for layer in LAYERS}
                tracker.log_metrics(trial, logged, step=epoch)
        if spec.get("fail"):
            tracker.finish(trial, "FAILED", "the learned FLOPs collapsed to 0")
            sweep.failed.append(trial)
            continue
        structure = _structure(keep, step=epochs * 10)
        folder = tmp / trial
        (folder / "structures").mkdir(parents=True)
        (folder / "structure.json").write_text(json.dumps(structure))
        (folder / "structures" / f"structure_{epochs * 10}.json").write_text(json.dumps(structure))
        (folder / "metrics.json").write_text(json.dumps({"trial_id": trial}))
        tracker.log_artifact(
            trial, folder / "structures" / f"structure_{epochs * 10}.json", "structures"
        )
        for epoch in range(1, 3):
            accuracy = 0.7 + 0.05 * epoch + 0.2 * keep
            tracker.log_metrics(
                trial,
                {
                    "retrain/loss": 1.0 / epoch,
                    "retrain/accuracy": accuracy,
                    "retrain/val_accuracy": accuracy - 0.02,
                },
                step=epoch,
            )
        learned = structure["cost"]["learned"]
        final = {
            "rebuilt_cost": learned * (2.0 if spec["target"] == "latency" else 1.0),
            "predicted_cost": learned,
            "seed_cost": SEED_COST,
            "cost_fraction": learned / SEED_COST,
            # learned structures beat the uniform-width baseline at the same cost
            "retrained_val_accuracy": 0.78
            + 0.2 * keep
            + {"gamma": 0.04, "group_lasso": 0.03}.get(spec["algorithm"], 0.0),
        }
        if not baseline:
            final["strength"] = spec["strength"]
        # the names MLflow's own run table and charts show (as the sweep logs them)
        final[f"cost/{spec['target']}"] = final["rebuilt_cost"]
        final[f"cost_fraction/{spec['target']}"] = final["cost_fraction"]
        final["accuracy"] = final["retrained_val_accuracy"]
        tracker.log_metrics(trial, final, step=0)
        tracker.log_artifact(trial, folder / "structure.json")
        tracker.log_artifact(trial, folder / "metrics.json")
        tracker.finish(trial, "FINISHED")
        sweep.finished[trial] = spec
    config = SimpleNamespace(trial={"hardware": "P100"})
    front = publish_pareto(tracker, SweepStore(uri, name), config)
    publish_pareto_figures(tracker, config, front)
    tracker.set_chart_view(["flops", "latency"])
    tracker.finish_sweep()
    return sweep


@pytest.fixture(scope="module")
def fake_sweep(mlflow_server, tmp_path_factory):  # noqa: F811
    return populate_sweep(mlflow_server, "dash-sweep", tmp_path_factory.mktemp("logged"))


@pytest.fixture(scope="module")
def dashboard(fake_sweep, tmp_path_factory):
    out = tmp_path_factory.mktemp("dashboard")
    return build_dashboard(fake_sweep.uri, fake_sweep.name, out)


# --- parsing what the pages hold -----------------------------------------------------------------
class Tags(HTMLParser):
    """Every start tag with its attributes, the enclosing section's data-target and link."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[dict] = []
        self._stack: list[dict] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        context = dict(self._stack[-1]["context"]) if self._stack else {}
        if tag == "section":
            context["section"] = attributes.get("data-target")
        if tag == "a":
            context["href"] = attributes.get("href")
        for key in ("pareto-figure", "curves-section", "widths-figure"):
            if key in attributes.get("class", "").split():
                context["figure"] = key
        entry = {"tag": tag, "attrs": attributes, "context": context}
        self.tags.append(entry)
        if tag not in ("meta", "br", "img", "input", "rect", "line", "circle", "path", "polyline"):
            self._stack.append(entry)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if self._stack and self._stack[-1]["tag"] == tag:
            self._stack.pop()

    def handle_endtag(self, tag):
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i]["tag"] == tag:
                del self._stack[i:]
                break

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag=None, cls=None, **context):
        out = []
        for entry in self.tags:
            if tag is not None and entry["tag"] != tag:
                continue
            if cls is not None and cls not in entry["attrs"].get("class", "").split():
                continue
            if any(entry["context"].get(k) != v for k, v in context.items()):
                continue
            out.append(entry)
        return out


def parse(path: Path) -> Tags:
    parser = Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def figures(path: Path, kind: str | None = None, target: str | None = None) -> list[dict]:
    """The plotly figures a page holds, by kind ("pareto", "curves", "widths") and target."""
    found = figure_data(path)
    return [
        f
        for f in found
        if (kind is None or f["layout"].get("meta", {}).get("kind") == kind)
        and (target is None or f["layout"].get("meta", {}).get("target") == target)
    ]


def traces(figure: dict, role: str) -> list[dict]:
    return [t for t in figure["data"] if t.get("meta", {}).get("role") == role]


# --- figures on their own ------------------------------------------------------------------------
def test_training_curves_draw_one_line_per_trial_and_metric(tmp_path):
    histories = {
        "a": {"learn/cost": [(1, 10.0), (2, 5.0), (3, 0.5)], "learn/val_accuracy": [(1, 0.5)]},
        "b<script>": {"learn/cost": [(2, 8.0), (1, 9.0), (3, float("nan"))]},
        "c": {},
    }
    page = write_chart(curves_chart(histories, "t & <b>"), tmp_path / "curves.html")
    (figure,) = figures(page, "curves")
    by_metric = {}
    for c in traces(figure, "curve"):
        by_metric.setdefault(c["meta"]["metric"], []).append(c)
    assert {m: len(v) for m, v in by_metric.items()} == {"learn/cost": 2, "learn/val_accuracy": 1}
    # points are drawn in epoch order, non-finite values dropped
    b = next(c for c in by_metric["learn/cost"] if c["meta"]["trial"] == "b<script>")
    assert b["x"] == [1.0, 2.0] and b["y"] == [9.0, 8.0]
    # the empty panel says so; a cost spanning a decade gets a log axis
    assert [a["text"] for a in figure["layout"]["annotations"] if a["text"] == "no data"]
    assert figure["layout"]["yaxis"]["type"] == "log"
    # text plotly renders as HTML is escaped
    assert figure["layout"]["title"]["text"] == "t &amp; &lt;b&gt;"
    assert all("<script>" not in t["hovertext"] for t in traces(figure, "curve"))
    png = write_chart(curves_chart(histories, "t"), tmp_path / "curves.png")
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_layer_widths_draw_two_bars_per_layer_in_order(tmp_path):
    structure = _structure(0.5, step=7)
    structure["layers"] = {
        "<img onerror=x>": structure["layers"].pop("conv1"),
        **structure["layers"],
    }
    page = write_chart(widths_chart(structure, "w", "t1"), tmp_path / "w.html", link="javascript:x")
    (figure,) = figures(page, "widths")
    (alive,) = traces(figure, "bar-alive")
    (original,) = traces(figure, "bar-original")
    assert [c[0] for c in alive["customdata"]] == list(structure["layers"])
    assert alive["x"] == [layer["alive"] for layer in structure["layers"].values()]
    assert original["x"] == [layer["original"] for layer in structure["layers"].values()]
    # learned bar never longer than the seed bar; the first layer on top
    assert all(a <= o for a, o in zip(alive["x"], original["x"], strict=True))
    assert figure["layout"]["yaxis"]["autorange"] == "reversed"
    assert alive["y"][0] == "&lt;img onerror=x&gt;" and alive["meta"]["trial"] == "t1"
    assert "javascript:" not in page.read_text().split("<body>", 1)[1].split("<script", 1)[0]
    assert "FLOPs: seed 1e6" in figure["layout"]["title"]["text"]
    assert (
        write_chart(widths_chart(structure, "w"), tmp_path / "w.png").read_bytes()[:8] == PNG_MAGIC
    )
    with pytest.raises(ValueError, match="layers"):
        widths_chart({"flat": {}}, "bad")


def test_pages_embed_plotly_once_and_load_nothing_from_elsewhere(dashboard):
    for page in [dashboard, *dashboard.parent.glob("pareto_*.html")]:
        text = page.read_text()
        assert text.count("plotly.js v") == 1 or text.count("* plotly.js") == 1, page.name
        assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)=", text), page.name
    # trial pages share the dashboard's one copy of plotly.js
    trial = next(dashboard.parent.glob("trial_*.html")).read_text()
    assert '<script charset="utf-8" src="plotly.min.js"></script>' in trial
    assert (dashboard.parent / "plotly.min.js").stat().st_size > 1_000_000


# --- the dashboard from MLflow -------------------------------------------------------------------
def test_dashboard_files(fake_sweep, dashboard):
    out = dashboard.parent
    assert dashboard.name == "index.html"
    for target in ("flops", "latency"):
        for name in (
            f"pareto_{target}.html",
            f"pareto_{target}.png",
            f"curves_{target}.html",
            f"curves_{target}.png",
            f"widths_{target}.png",
        ):
            assert (out / name).is_file(), name
        assert (out / f"pareto_{target}.png").read_bytes()[:8] == PNG_MAGIC
    # one page per finished trial, none for the failed one
    pages = {p.name for p in out.glob("trial_*.html")}
    assert pages == {trial_page_name(t) for t in fake_sweep.finished}
    assert trial_page_name(fake_sweep.failed[0]) not in pages


@pytest.mark.parametrize("target", ["flops", "latency"])
def test_dashboard_charts_draw_the_sweep(fake_sweep, dashboard, target):
    tags = parse(dashboard)
    learners = fake_sweep.finished_of(target, baseline=False)
    everyone = fake_sweep.finished_of(target)
    table = results_table(fake_sweep.uri, fake_sweep.name)
    urls = dict(zip(table["trial_id"], table["run_url"], strict=True))
    # Pareto chart: one point per finished trial of the target, each linking to its MLflow run
    (pareto,) = figures(dashboard, "pareto", target)
    points = traces(pareto, "points") + traces(pareto, "baseline")
    drawn = [c for t in points for c in t["customdata"]]
    assert sorted(c[0] for c in drawn) == sorted(everyone)
    assert {c[0]: c[1] for c in drawn} == {t: urls[t] for t in everyone}
    assert len(traces(pareto, "baseline")) == 1  # the baseline on every plot
    assert len(traces(pareto, "knee")[0]["x"]) == 1  # the knee marked
    # curves: learning panels draw the finished non-baseline trials, retraining all finished ones
    (curves,) = figures(dashboard, "curves", target)
    count = {}
    for c in traces(curves, "curve"):
        count.setdefault(c["meta"]["metric"], []).append(c["meta"]["trial"])
        assert c["customdata"][0][1] == urls[c["meta"]["trial"]]
    assert sorted(count["learn/cost"]) == sorted(learners)
    assert sorted(count["learn/val_accuracy"]) == sorted(learners)
    assert sorted(count["retrain/val_accuracy"]) == sorted(everyone)
    # widths: the knee of sweep's own front, two bars per layer of its structure
    rows = table[table["target"] == target]
    knee = pick(pareto_front(rows, cost="cost", accuracy="accuracy"), knee=True)["trial_id"]
    figure = [f for f in tags.find("div", "widths-figure") if f["context"]["section"] == target]
    assert [f["attrs"]["data-trial"] for f in figure] == [knee]
    (widths,) = figures(dashboard, "widths", target)
    assert widths["layout"]["meta"]["trial"] == knee
    assert [len(t["x"]) for t in widths["data"]] == [len(LAYERS), len(LAYERS)]
    # the menu offers every finished trial's page
    options = tags.find("option", section=target)
    assert {o["attrs"]["data-trial"] for o in options} == set(everyone)
    assert [o["attrs"]["data-trial"] for o in options if "selected" in o["attrs"]] == [knee]
    assert all((dashboard.parent / o["attrs"]["value"]).is_file() for o in options)


def test_dashboard_links_runs_and_hover(fake_sweep, dashboard):
    text = dashboard.read_text()
    table = results_table(fake_sweep.uri, fake_sweep.name)
    for _, row in table.iterrows():
        assert row["run_url"].startswith(fake_sweep.uri)
        assert f'href="{row["run_url"]}"' in text, row["trial_id"]
    # hover text of a point names the trial and its strength
    (pareto,) = figures(dashboard, "pareto", "flops")
    hover = [h for t in traces(pareto, "points") for h in t["hovertext"]]
    assert any(
        h.startswith("algorithm: gamma<br>trial_id: gamma-flops-m1-s0<br>strength: 1e-6")
        for h in hover
    ), hover
    # the failed trial is listed (no point, no page) with its reason
    tags = parse(dashboard)
    failed = [r for r in tags.find("tr") if r["attrs"].get("data-status") == "FAILED"]
    assert [r["attrs"]["data-trial"] for r in failed] == fake_sweep.failed
    assert "collapsed" in failed[0]["attrs"]["title"]
    assert "http-equiv" not in text


def test_trial_pages(fake_sweep, dashboard):
    for trial in fake_sweep.finished:
        page = dashboard.parent / trial_page_name(trial)
        tags = parse(page)
        (widths,) = figures(page, "widths")
        assert [len(t["x"]) for t in widths["data"]] == [len(LAYERS), len(LAYERS)]
        (curves,) = figures(page, "curves")
        assert {c["meta"]["trial"] for c in traces(curves, "curve")} == {trial}
        assert tags.find("a", "run-link")[0]["attrs"]["href"].endswith(fake_sweep.run_ids[trial])
        assert any(a["attrs"].get("href") == "index.html" for a in tags.find("a"))


def test_chosen_trial_and_rebuild_removes_stale_pages(fake_sweep, tmp_path):
    chosen = "group_lasso-flops-m0.5-s0"
    (tmp_path / "trial_gone.html").write_text("old")
    (tmp_path / "notes.txt").write_text("mine")
    index = build_dashboard(fake_sweep.uri, fake_sweep.name, tmp_path, trial_id=chosen)
    tags = parse(index)
    figure = tags.find("div", "widths-figure", section="flops")
    assert figure[0]["attrs"]["data-trial"] == chosen
    assert figure[0]["attrs"]["data-knee"] == "false"
    assert not (tmp_path / "trial_gone.html").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="not a finished trial"):
        build_dashboard(fake_sweep.uri, fake_sweep.name, tmp_path, trial_id="nope")


def test_publish_dashboard_logs_to_the_parent_run(fake_sweep):
    logged = publish_dashboard(fake_sweep.uri, fake_sweep.name)
    client = MlflowClient(fake_sweep.uri)
    artifacts = {a.path for a in client.list_artifacts(fake_sweep.parent_id, "dashboard")}
    assert set(logged) == artifacts
    assert "dashboard/index.html" in artifacts
    assert {
        "dashboard/pareto_flops.png",
        "dashboard/curves_flops.png",
        "dashboard/widths_flops.png",
        "dashboard/pareto_flops.html",
    } <= artifacts
    assert {f"dashboard/{trial_page_name(t)}" for t in fake_sweep.finished} <= artifacts
    # publishing by URI left the finished parent run finished
    assert client.get_run(fake_sweep.parent_id).info.status == "FINISHED"
    # through a tracker, too (what run_sweep would call after publish_pareto)
    tracker = SweepTracker(fake_sweep.uri, fake_sweep.name)
    assert publish_dashboard(tracker) == logged
    local = client.download_artifacts(fake_sweep.parent_id, "dashboard/index.html")
    assert "Sweep dash-sweep" in Path(local).read_text()
    tracker.finish_sweep()
    with pytest.raises(ValueError, match="not the tracker's"):
        publish_dashboard(tracker, "other")


def test_cli_builds_without_serving(fake_sweep, tmp_path, capsys):
    out = tmp_path / "dash"
    rc = dashboard_main(
        [
            "dashboard",
            fake_sweep.name,
            "--tracking-uri",
            fake_sweep.uri,
            "--out",
            str(out),
            "--no-serve",
        ]
    )
    assert rc == 0
    assert capsys.readouterr().out.strip() == str((out / "index.html").resolve())
    rc = dashboard_main(
        ["dashboard", "no-such-sweep", "--tracking-uri", fake_sweep.uri, "--no-serve"]
    )
    assert rc == 2
    assert "no sweep named 'no-such-sweep'" in capsys.readouterr().err


def test_cli_serves_on_loopback_until_interrupted(fake_sweep, tmp_path):
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "dashboards.cli",
        "dashboard",
        fake_sweep.name,
        "--tracking-uri",
        fake_sweep.uri,
        "--out",
        str(tmp_path / "d"),
        "--port",
        str(port),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        command,
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        line = process.stdout.readline()
        assert f"http://127.0.0.1:{port}/index.html" in line, process.stderr.read()
        deadline, body = time.time() + 30, ""
        while time.time() < deadline and not body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.2)
        assert "Sweep dash-sweep" in body
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=90) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
