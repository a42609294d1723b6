"""bench/setups.py --quick runs end to end: the advisor, full probes and real renders of unseen photos."""
import json

from common import run_python


def test_setups_quick_produces_its_table(tmp_path):
    proc = run_python(["bench/setups.py", "--quick", "--out", str(tmp_path)],
                      env={"PREDISTORT_CACHE": str(tmp_path / "cache")}, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    md = (tmp_path / "setups.md").read_text()
    assert md.strip() in proc.stdout
    data = json.loads((tmp_path / "setups.json").read_text())
    results = data["results"]
    assert list(results) == ["tutorial's setup, IOR 1.06", "glass (IOR 1.5), tutorial's placement",
                             "glass (IOR 1.5), advised placement"]
    for name, r in results.items():
        assert f"| {name} |" in md
        assert len(r["measured_per_photo"]) == 2 and all(0 < x < 2 for x in r["measured_per_photo"])
        assert 0 < r["predicted_search"] < 1 and 0 < r["predicted_full"] < 1
    advice = data["advice"]
    assert advice["moved"] and advice["best"]["print_distance_mm"] > advice["setup"]["print_distance_mm"]
    assert results["glass (IOR 1.5), advised placement"]["print_distance_mm"] == advice["best"]["print_distance_mm"]
    # The advisor's prediction and the measurement agree on which placement of the glass is better.
    glass, advised = results["glass (IOR 1.5), tutorial's placement"], results["glass (IOR 1.5), advised placement"]
    assert advised["predicted_search"] < glass["predicted_search"] and advised["measured"] < glass["measured"]
    assert (tmp_path / "setups_advice.png").stat().st_size > 1000
