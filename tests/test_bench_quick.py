"""The benchmarks' --quick modes run end to end (each method in its own process, the tutorial's own code
included) and produce their tables; no timing is asserted.

The tutorial's four textures are not in this repository: here four of the repository's own pictures stand in
for them (PREDISTORT_TUTORIAL_TEXTURES), which checks the benchmarks' mechanics, not the tutorial's numbers."""
import json
import math
import shutil

import pytest

from common import REPO, picture_paths, run_python


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """PREDISTORT_TUTORIAL_TEXTURES pointing at four 128×128 pictures of this repository, named as the tutorial's."""
    folder = tmp_path_factory.mktemp("tutorial-stand-ins")
    for path in picture_paths():
        shutil.copy(path, folder / path.name)                   # image_001.png … image_004.png
    return {"PREDISTORT_TUTORIAL_TEXTURES": str(folder)}


@pytest.mark.parametrize("script", ["bench/tutorial.py", "bench/quality.py", "bench/train_default.py"])
def test_without_the_tutorials_textures_a_benchmark_says_where_to_get_them(script, tmp_path):
    proc = run_python([script, "--quick", "--out", str(tmp_path)], env={"PREDISTORT_TUTORIAL_TEXTURES": str(tmp_path)})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "mitsuba-tutorials" in proc.stderr and "PREDISTORT_TUTORIAL_TEXTURES" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

TUTORIAL, EFFICIENT = "tutorial layer, tutorial's code", "tutorial layer, predistort.train"
PIXELS = "per-texture pixel optimisation"
SCRATCH, BUNDLED = "generalising layer, trained from scratch", "generalising layer, bundled weights (weights/default)"
INSTANT, REFINE = "instant solve", "refinement, 20 s from the instant solve"
REFINE_NONE = "refinement, 20 s from no pre-distortion"


def test_quality_quick_produces_its_table(tmp_path, stand_ins):
    proc = run_python(["bench/quality.py", "--quick", "--out", str(tmp_path)], env=stand_ins, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    md = (tmp_path / "quality.md").read_text()
    assert md.strip() in proc.stdout                               # the table is printed and saved
    results = json.loads((tmp_path / "quality.json").read_text())["results"]
    assert list(results) == ["none", TUTORIAL, EFFICIENT, PIXELS, SCRATCH, BUNDLED, INSTANT, REFINE, REFINE_NONE]
    for name, r in results.items():
        assert f"| {name} |" in md
        assert r["peak_rss_gb"] > 0 and r["apply_seconds_per_image"] >= 0 and r["train_seconds"] >= 0
        assert len(r["scores"]["tutorial"]) == 4 and len(r["scores"]["unseen"]) == 2
        assert 0 < r["summary"]["tutorial"]["l1"] < 1
        for group in ("tutorial", "unseen"):
            assert all(math.isfinite(v) for v in r["summary"][group].values()), (name, r["summary"])
    # The rows built on the probed light transport say in a note what their numbers cover; at 32² the
    # bundled 128² weights cannot run as they are, and the table says what stands in for them.
    for name in (SCRATCH, BUNDLED, INSTANT, REFINE, REFINE_NONE):
        assert f"- {name}: " in md
    for name in (SCRATCH, BUNDLED, INSTANT, REFINE):
        assert results[name]["train_seconds"] > 0                  # each probes the scene from scratch
    assert "at 32²" in results[BUNDLED]["note"]
    assert results[SCRATCH]["losses"] and all(math.isfinite(x) for x in results[SCRATCH]["losses"])
    assert len(results[REFINE]["refine_steps"]) == 6 and len(results[REFINE_NONE]["refine_steps"]) == 6
    assert results["none"]["summary"]["unseen"]["l1_ratio_to_none"] == pytest.approx(1.0)
    # The two implementations of the tutorial layer train the same weights: same losses, same renders.
    assert results[EFFICIENT]["losses"] == pytest.approx(results[TUTORIAL]["losses"], rel=1e-5)
    assert results[EFFICIENT]["summary"]["tutorial"]["l1"] == pytest.approx(
        results[TUTORIAL]["summary"]["tutorial"]["l1"], rel=1e-3)
    # Optimising each image's own pixels through the renderer helps, even with 10 steps.
    for group in ("tutorial", "unseen"):
        assert results[PIXELS]["summary"][group]["l1_ratio_to_none"] < 0.9
    # So do the methods that know the scene's light transport, on the photos no model trained on too.
    for name in (SCRATCH, BUNDLED, INSTANT, REFINE):
        for group in ("tutorial", "unseen"):
            assert results[name]["summary"][group]["l1_ratio_to_none"] < 0.9, (name, group)
    # Refinement has 16 steps per image here (--quick gives it steps, not seconds: the same work on any machine,
    # however busy): from the picture itself they take a tenth or more off its L1 (0.88 and 0.82 measured).
    assert results[REFINE]["refine_step_budget"] == results[REFINE_NONE]["refine_step_budget"] == 16
    assert results[REFINE_NONE]["refine_steps"] == [16] * 6
    for group in ("tutorial", "unseen"):
        assert results[REFINE_NONE]["summary"][group]["l1_ratio_to_none"] < 0.95, group


def test_tutorial_benchmark_quick_compares_the_two_implementations(tmp_path, stand_ins):
    proc = run_python(["bench/tutorial.py", "--quick", "--out", str(tmp_path)], env=stand_ins, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    md = (tmp_path / "tutorial.md").read_text()
    assert md.strip() in proc.stdout
    assert f"| {TUTORIAL} |" in md and f"| {EFFICIENT} |" in md
    assert "OK: same loss trajectory" in md
    data = json.loads((tmp_path / "tutorial.json").read_text())
    assert all(c["ok"] for c in data["checks"])


def test_refine_settings_scores_each_setting_twice(tmp_path):
    proc = run_python(["bench/refine_settings.py", "--photos", "1", "--seconds", "1", "--resolution", "32",
                       "--out", str(tmp_path)], timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "refine_settings.json").read_text())
    assert len(data["settings"]) == 4
    for name, r in data["settings"].items():
        assert f"| {name} |" in (tmp_path / "refine_settings.md").read_text()
        # refinement never keeps a candidate that scores worse than the solve on its own fixed seed
        assert r["fixed_seed_l1"][0] <= data["solve"]["fixed_seed_l1"][0] + 1e-7
        assert 0 < r["spp512_l1"][0] < 1
        assert len(r["seconds"]) == 1 and r["seconds"][0] > 0 and isinstance(r["within_budget"], bool)


def test_soak_service_samples_the_rss_of_the_service_alone(tmp_path):
    out = tmp_path / "soak_service.md"
    proc = run_python(["bench/soak_service.py", "--calls", "3", "--every", "1", "--out", str(out)], timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    text = out.read_text()
    assert text.strip() in proc.stdout and "3 pre-distortions" in text
    samples = text.split("RSS every 1 calls (MB): ")[1].split(",")
    assert len(samples) == 3 and all(float(mb) > 50 for mb in samples)


def test_costs_quick_writes_every_constant_of_the_cost_model(tmp_path):
    out = tmp_path / "costs.json"
    proc = run_python(["bench/costs.py", "--quick", "--out", str(out)], timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    written = json.loads(out.read_text())
    shipped = json.loads((REPO / "predistort" / "costs.json").read_text())
    for group, constants in shipped.items():
        if isinstance(constants, dict):
            assert set(written[group]) == set(constants), group
            assert all(math.isfinite(v) and v >= 0 for v in written[group].values()), group
    assert written["command"] == "python bench/costs.py --quick" and written["machine"]


def test_scale_quick_runs_both_paths_at_two_sizes(tmp_path):
    """bench/scale.py --quick: today's path (bench/scale_baseline.py) and the new one at 32² and 64², each in its
    own process, scored with real renders; the new path's pre-distortions help as much as today's."""
    proc = run_python(["bench/scale.py", "--quick", "--out", str(tmp_path)], timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    md = (tmp_path / "scale.md").read_text()
    assert md.strip() in proc.stdout
    data = json.loads((tmp_path / "scale.json").read_text())
    assert list(data["results"]) == ["32", "64"] and data["spp"] == 16
    for res, r in data["results"].items():
        assert f"| {res}² |" in md
        for path in ("old", "new"):
            assert r[path]["probe_seconds"] > 0 and r[path]["peak_rss_gb"] > 0
            assert all(s > 0 for s in r[path]["apply_seconds"].values())
        assert set(r["new"]["probe_stages"]) >= {"tracing the sphere's light paths", "assembling the light transport"}
        assert len(r["l1"]["none"]) == 2
        ratios = r["ratio"]
        assert ratios["none"] == pytest.approx(1.0)
        for method in ("old: instant solve", "new: instant solve", "new: generalising layer"):
            assert ratios[method] < 0.8, (res, method, ratios)
        assert ratios["new: instant solve"] < 1.1 * ratios["old: instant solve"]


def test_session_size_measures_both_stores():
    """bench/session_size.py, small: an idle session of the app's store holds less than a tenth of the Python heap
    of one in Gradio's own store (its config copies), and no image tensor in either."""
    proc = run_python(["bench/session_size.py", "--sessions", "4", "--resolution", "32"], timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = [line.split("|") for line in proc.stdout.splitlines() if line.startswith("| Gradio") or
            line.startswith("| LeanSessions")]
    (old_heap, old_tensors, _), (new_heap, new_tensors, disk) = ([float(x) for x in r[2:5]] for r in rows)
    assert new_heap < old_heap / 10 and old_tensors == new_tensors == 0.0
    assert disk == pytest.approx(4 * 3 * 32 * 32 / 1e3, abs=2.0)   # four 8-bit 32² images a result (+ .npz headers)
