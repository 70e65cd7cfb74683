"""2AFC study: export balance/coverage/vigilance, analysis recovers a planted preference, malformed results."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from eval.cli import main
from eval.study.analyze import analyze, read_manifest
from eval.study.export import plan_trials
from eval.study.stats import hierarchical_bootstrap, wilson_interval

BASELINES = ["pixel", "pixel+inpaint", "sdedit"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """edits/items.csv with 60 items and renders/{ours,baselines,input,source}/{item}.png."""
    root = tmp_path_factory.mktemp("study")
    items = [f"img{i:03d}-move" for i in range(60)]
    (root / "edits").mkdir()
    pd.DataFrame(
        {"item": items, "instruction": [f"move the object at the top left to the right ({i})" for i in items]}
    ).to_csv(root / "edits" / "items.csv", index=False)
    px = np.zeros((8, 8, 3), np.uint8)
    for m in ["ours", *BASELINES, "input", "source"]:
        (root / "renders" / m).mkdir(parents=True)
        for it in items:
            Image.fromarray(px).save(root / "renders" / m / f"{it}.png")
    return root


def _export(study, out, *extra):
    return main(
        [
            "study",
            "export",
            "--edits",
            str(study / "edits"),
            "--renders",
            str(study / "renders"),
            "--baselines",
            ",".join(BASELINES),
            "--out",
            str(out),
            *extra,
        ]
    )


def test_export_covers_each_pair_once_balanced_with_vigilance(study, tmp_path):
    out = tmp_path / "hits"
    assert _export(study, out, "--trials-per-hit", "10", "--seed", "3", "--url-prefix", "https://cdn.example/s") == 0
    man = pd.read_csv(out / "manifest.csv")
    real = man[~man["vigilance"] & ~man["practice"]]
    pairs = list(zip(real["item"], real["method_b"]))
    assert len(pairs) == len(set(pairs)) == 60 * len(BASELINES)  # every pair exactly once
    assert (man["method_a"] == "ours").all()
    left = int((man["ours_side"] == "left").sum())
    assert stats.binomtest(left, len(man), 0.5).pvalue > 0.01  # fair coin
    assert ((man["ours_side"] == "left") == (man["left"] == "ours")).all()
    vig = man[man["vigilance"]]
    assert (vig["method_b"] == "input").all() and abs(len(vig) / len(man) - 0.10) < 0.03
    assert man.groupby("hit").size().eq(10).all() and man.groupby("hit")["vigilance"].sum().ge(1).all()
    assert not man["trial_id"].duplicated().any()
    batch = pd.read_csv(out / "batch.csv")
    assert len(batch) == man["hit"].nunique() and {"t1_id", "t10_left", "t10_instruction"} <= set(batch.columns)
    first = man[man["hit"] == 0].sort_values("trial").iloc[0]
    assert batch.loc[0, "t1_left"] == f"https://cdn.example/s/images/{first['left']}/{first['item']}.png"
    assert (out / "images" / "ours" / f"{first['item']}.png").is_file()
    html = (out / "hit.html").read_text()
    assert "${t10_right}" in html and 'name="t10"' in html and "${t11_id}" not in html
    preview = (out / "preview.html").read_text()
    assert "${t" not in preview  # every placeholder of the first HIT filled in
    assert f"images/{first['left']}/{first['item']}.png" in preview and "https://cdn.example" not in preview
    # Deterministic in the seed; another seed gives another order.
    again = tmp_path / "again"
    assert _export(study, again, "--trials-per-hit", "10", "--seed", "3", "--url-prefix", "https://cdn.example/s") == 0
    assert (again / "manifest.csv").read_text() == (out / "manifest.csv").read_text()
    other = plan_trials(sorted(set(man["item"])), BASELINES, trials_per_hit=10, vigilance_rate=0.1, practice=0, seed=4)
    assert list(other["trial_id"]) == list(man["trial_id"]) and list(other["item"]) != list(man["item"])


def test_export_practice_and_errors(study, tmp_path, capsys):
    m = plan_trials([f"i{k}" for k in range(7)], ["a", "b"], trials_per_hit=6, vigilance_rate=0.2, practice=2, seed=0)
    assert (m.groupby("hit").head(2)["practice"]).all() and m["practice"].sum() == 2 * m["hit"].nunique()
    assert not m.loc[m["practice"], "vigilance"].any()
    assert _export(study, tmp_path / "x", "--trials-per-hit", "2", "--vigilance-rate", "0.5", "--practice", "1") == 2
    assert "no room for real trials" in capsys.readouterr().err
    renders = tmp_path / "renders"
    (renders / "ours").mkdir(parents=True)
    assert (
        main(
            [
                "study",
                "export",
                "--edits",
                str(study / "edits"),
                "--renders",
                str(renders),
                "--baselines",
                "pixel",
                "--out",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )
    assert "rendered image(s) are missing" in capsys.readouterr().err and not (tmp_path / "y").exists()


def _simulate(manifest: pd.DataFrame, *, pref=0.7, n_workers=24, per_hit=5, bad_worker="BAD", seed=0):
    """MTurk-shaped results. Good workers pass vigilance, and exactly ``pref`` of their judgments per
    baseline prefer ours (a balanced, shuffled list, so the planted value is known exactly); the bad
    worker takes a slot of every HIT and always answers "left"."""
    rng = np.random.default_rng(seed)
    workers = [f"W{i:02d}" for i in range(n_workers)]
    real = manifest[~manifest["vigilance"] & ~manifest["practice"]]
    planted = {}
    for b, n in real.groupby("method_b").size().items():
        total = n * (per_hit - 1)
        k = round(pref * total)
        planted[b] = list(rng.permutation(np.r_[np.ones(k, bool), np.zeros(total - k, bool)]))
    rows = []
    for h, g in manifest.groupby("hit"):
        g = g.sort_values("trial")
        chosen = [bad_worker, *rng.choice(workers, per_hit - 1, replace=False)]
        for w in chosen:
            row = {"HITId": f"H{h}", "AssignmentId": f"A{h}-{w}", "WorkerId": w, "Input.hit_id": f"h{h:05d}"}
            for slot, t in enumerate(g.itertuples(), start=1):
                row[f"Input.t{slot}_id"] = t.trial_id
                row[f"Input.t{slot}_left"] = f"images/{t.left}/{t.item}.png"
                if w == bad_worker:
                    ans = "left"
                else:
                    ours = True if (t.vigilance or t.practice) else planted[t.method_b].pop()
                    ans = t.ours_side if ours else ("right" if t.ours_side == "left" else "left")
                row[f"Answer.t{slot}"] = ans
            rows.append(row)
    return pd.DataFrame(rows)


def test_analyze_recovers_planted_preference_and_drops_bad_worker(study, tmp_path, capsys):
    out = tmp_path / "hits"
    assert _export(study, out, "--seed", "1") == 0
    manifest = pd.read_csv(out / "manifest.csv")
    results = _simulate(manifest)
    res_csv = tmp_path / "results.csv"
    results.to_csv(res_csv, index=False)
    ana = tmp_path / "analysis"
    assert (
        main(
            [
                "study",
                "analyze",
                "--results",
                str(res_csv),
                "--manifest",
                str(out / "manifest.csv"),
                "--out",
                str(ana),
                "--bootstrap",
                "300",
            ]
        )
        == 0
    )
    table = pd.read_csv(ana / "results.csv")
    assert sorted(table["baseline"]) == sorted(BASELINES)
    for r in table.itertuples():
        assert r.ours_pct == pytest.approx(70.0, abs=0.5)
        assert r.wilson_lo < 65 and r.wilson_hi > 75 and r.boot_lo < 70 < r.boot_hi
        assert r.p_value < 1e-3 and r.n == 60 * (5 - 1)  # bad worker's judgments dropped from every HIT
    ex = pd.read_csv(ana / "exclusions.csv").set_index("reason")["count"]
    assert ex["failed_vigilance_workers"] == 1 and ex["failed_vigilance"] > 0
    assert (ana / "preference.png").stat().st_size > 1000 and "| ours % |" in (ana / "results.md").read_text()
    assert "failed_vigilance_workers=1" in capsys.readouterr().err


def test_analyze_exclusions_are_counted(study, tmp_path):
    out = tmp_path / "hits"
    assert _export(study, out, "--seed", "1") == 0
    manifest = read_manifest(out / "manifest.csv")
    results = _simulate(manifest.assign(hit=manifest["hit"].astype(int)), n_workers=10)
    dup = results.iloc[[0]]
    results.loc[2, "Answer.t3"] = ""
    all_rows = pd.concat([results, dup], ignore_index=True)
    all_rows.loc[1, "Input.t1_id"] = "h99999t00"
    table, counts = analyze(all_rows.astype(str), manifest, min_vigilance=0.0, n_boot=50)
    assert counts["duplicate_assignment"] == 10 and counts["unknown_trial"] == 1 and counts["missing_answer"] == 1
    assert counts["failed_vigilance_workers"] == 0 and table["n"].sum() == 60 * 3 * 5 - 2
    _, strict = analyze(all_rows.astype(str), manifest, min_vigilance=0.8, n_boot=50)
    assert strict["failed_vigilance_workers"] == 1


def test_analyze_malformed_results(study, tmp_path, capsys):
    out = tmp_path / "hits"
    assert _export(study, out) == 0
    man = out / "manifest.csv"
    bad = tmp_path / "bad.csv"
    cases = [
        ("AssignmentId,Answer.t1\nA1,left\n", "no WorkerId column"),
        ("WorkerId,Answer.t1\nW1,left\n", "no Input.t1_id column"),
        ("WorkerId,Input.t1_id\nW1,h00000t00\n", "no Answer.t<k>"),
        ("WorkerId,Input.t1_id,Answer.t1\nW1,nope,left\n", "all trial ids unknown"),
    ]
    for text, msg in cases:
        bad.write_text(text)
        assert (
            main(["study", "analyze", "--results", str(bad), "--manifest", str(man), "--out", str(tmp_path / "a")]) == 2
        )
        err = capsys.readouterr().err
        assert err.startswith("error:") and msg in err and err.count("\n") == 1
    bad.write_bytes(b"\xff\xfe\x00garbage\x00\x00")
    assert main(["study", "analyze", "--results", str(bad), "--manifest", str(man), "--out", str(tmp_path / "a")]) == 2
    assert "error:" in capsys.readouterr().err
    assert (
        main(
            [
                "study",
                "analyze",
                "--results",
                str(bad),
                "--manifest",
                str(tmp_path / "none.csv"),
                "--out",
                str(tmp_path / "a"),
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "a").exists()


def test_statistics_against_references():
    lo, hi = wilson_interval(70, 100)
    assert lo == pytest.approx(0.6041, abs=1e-4) and hi == pytest.approx(0.7810, abs=1e-4)  # textbook values
    ci = stats.binomtest(70, 100).proportion_ci(method="wilson")
    assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-9)
    rng = np.random.default_rng(0)
    # One worker who always says "ours" plus many at 50 %: the hierarchical CI is wider than Wilson's.
    groups = [np.ones(200, bool)] + [rng.random(20) < 0.5 for _ in range(10)]
    blo, bhi = hierarchical_bootstrap(groups, n_boot=500, seed=0)
    k, n = sum(int(g.sum()) for g in groups), sum(len(g) for g in groups)
    wlo, whi = wilson_interval(k, n)
    assert bhi - blo > 2 * (whi - wlo)


@pytest.fixture(scope="module")
def heldout_folder(tmp_path_factory, astronaut, chelsea, coffee):
    from elements.data.split import is_heldout

    root = tmp_path_factory.mktemp("heldout")
    n, i = 0, 0
    while n < 4:
        if is_heldout(f"p{i}.png"):
            Image.fromarray(np.ascontiguousarray((astronaut, chelsea, coffee, astronaut[::-1])[n])).save(
                root / f"p{i}.png"
            )
            n += 1
        i += 1
    return root


def test_make_edits_and_render_are_deterministic_and_resumable(heldout_folder, tmp_path, capsys):
    from elements.spec import load_spec

    def make(out, seed="0"):
        return main(
            [
                "study",
                "make-edits",
                "--data",
                str(heldout_folder),
                "--limit",
                "4",
                "--backend",
                "grid",
                "--seed",
                seed,
                "--out",
                str(out),
            ]
        )

    assert make(tmp_path / "e1") == 0 and make(tmp_path / "e2") == 0
    items = pd.read_csv(tmp_path / "e1" / "items.csv", dtype={"item": str})
    assert list(items["op"]) == ["move", "scale", "delete", "remove"]
    for it in items.itertuples():
        a = (tmp_path / "e1" / it.spec).read_text()
        assert a == (tmp_path / "e2" / it.spec).read_text()  # same data + seed -> same specs
        spec = load_spec(tmp_path / "e1" / it.spec)
        assert spec.edits[0]["op"] == {"remove": "delete"}.get(it.op, it.op) and len(spec.edits[0]["elements"]) >= 12
        assert it.instruction.startswith(("Move the object", "Make the object", "Remove the object"))
        assert (spec.prompt != "") == (it.op == "remove")
    src = np.asarray(Image.open(tmp_path / "e1" / "source" / f"{items.item[0]}.png"))
    inp = np.asarray(Image.open(tmp_path / "e1" / "input" / f"{items.item[0]}.png"))
    assert (src != inp).any(axis=-1).mean() > 0.001  # the object is outlined on the shown source
    assert make(tmp_path / "e3", seed="1") == 0
    assert (tmp_path / "e3" / "items.csv").read_text() != (tmp_path / "e1" / "items.csv").read_text()

    renders = tmp_path / "renders"
    args = [
        "study",
        "render",
        "--edits",
        str(tmp_path / "e1"),
        "--method",
        "ours=pixel",
        "--method",
        "pixel+inpaint:backend=opencv",
        "--out",
        str(renders),
    ]
    assert main(args) == 0
    assert "ours: 4 new" in capsys.readouterr().out
    moved = np.asarray(Image.open(renders / "ours" / f"{items.item[0]}.png"))
    assert moved.shape == inp.shape and (moved != inp).any()
    assert main(args) == 0 and "ours: 0 new, pixel+inpaint: 0 new" in capsys.readouterr().out  # resumes
    assert (
        main(
            [
                "study",
                "export",
                "--edits",
                str(tmp_path / "e1"),
                "--renders",
                str(renders),
                "--baselines",
                "pixel+inpaint",
                "--trials-per-hit",
                "3",
                "--out",
                str(tmp_path / "hits"),
            ]
        )
        == 0
    )
    batch = pd.read_csv(tmp_path / "hits" / "batch.csv")
    assert batch["t1_source"].str.startswith("images/source/").all()
    assert set(batch.filter(like="_instruction").stack()) <= set(items["instruction"])
