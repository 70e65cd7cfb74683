"""eval table: merges run summaries into a Table 1/2-style CSV / Markdown / LaTeX table."""

import pandas as pd
import pytest

from elements.errors import UserError
from eval.cli import main
from eval.summary import write_outputs


def _run(root, name, **metrics):
    d = root / name
    per = pd.DataFrame({"stem": ["a", "b"], "mse": [metrics["mse"]] * 2})
    write_outputs(d, per, {"run": name, "n": metrics.pop("n", 5000), **metrics, "fid_n": 5000})
    return d


@pytest.fixture
def runs(tmp_path):
    # Table 1 of the paper (Sec. 4.4), as if produced by three recon runs.
    return [
        _run(tmp_path, "ours", mse=0.0069, psnr=22.98, ssim=0.6354, lpips=0.3376, fid=10.82),
        _run(tmp_path, "joint", mse=0.0138, psnr=19.74, ssim=0.5208, lpips=0.3697, fid=11.91),
        _run(tmp_path, "no-random-partition", mse=0.0066, psnr=23.15, ssim=0.6389, lpips=0.3262, fid=9.75),
    ]


def test_table_formats_like_table_1(runs, tmp_path, capsys):
    rows = tmp_path / "rows.csv"
    pd.DataFrame(
        {
            "run": ["ours", "joint", "no-random-partition"],
            "Staged Training": ["✓", "×", "✓"],
            "Random Partition": ["✓", "✓", "×"],
        }
    ).to_csv(rows, index=False)
    pref = tmp_path / "results.csv"
    pd.DataFrame({"baseline": ["joint", "no-random-partition"], "ours_pct": [65.8, 72.7]}).to_csv(pref, index=False)
    out = tmp_path / "table"
    assert main(["table", *map(str, runs), "--out", str(out), "--rows", str(rows), "--preference", str(pref)]) == 0
    t = pd.read_csv(out / "table.csv")
    assert list(t["Method"]) == ["ours", "joint", "no-random-partition"]
    assert list(t.columns[:3]) == ["Method", "Staged Training", "Random Partition"]
    assert list(t.columns[3:8]) == ["MSE ↓", "PSNR ↑", "SSIM ↑", "LPIPS ↓", "FID ↓"]
    assert t["FID ↓"].tolist() == [10.82, 11.91, 9.75]
    assert t["Preference VS ours ↑"].iloc[1] == pytest.approx(34.2) and pd.isna(t["Preference VS ours ↑"].iloc[0])
    md = (out / "table.md").read_text()
    assert "| ours | ✓ | ✓ | 0.0069 | 22.98 | 0.6354 | 0.3376 | 10.82 | – | 5000 | 5000 |" in md
    tex = (out / "table.tex").read_text()
    assert r"\textbf{9.75}" in tex and r"\textbf{0.0066}" in tex and r"\textbf{22.98}" not in tex
    assert r"MSE $\downarrow$" in tex and r"\checkmark" in tex and "no-random-partition" in tex
    assert "| Method |" in capsys.readouterr().out


def test_table_errors(runs, tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["table", str(runs[0]), str(tmp_path), "--out", str(out)]) == 2
    assert "summary.csv" in capsys.readouterr().err and not out.exists()
    assert main(["table", str(runs[0]), str(runs[0]), "--out", str(out)]) == 2
    assert "more than once" in capsys.readouterr().err
    rows = tmp_path / "rows.csv"
    rows.write_text("run,Supervision\nours,L2\n")
    assert main(["table", *map(str, runs), "--out", str(out), "--rows", str(rows)]) == 2
    assert "no row for 2 run(s) (first: joint)" in capsys.readouterr().err
    other = _run(tmp_path, "small", mse=0.01, n=100)
    assert main(["table", str(runs[0]), str(other), "--out", str(out)]) == 0
    assert "different numbers of images" in capsys.readouterr().err


def test_every_csv_eval_reads_goes_through_one_reader_that_names_the_file_and_keeps_the_cause(tmp_path):
    from eval.report import read_csv

    with pytest.raises(UserError, match="The --rows file '.*nope.csv' does not exist.") as err:
        read_csv(tmp_path / "nope.csv", what="--rows")
    assert isinstance(err.value.__cause__, FileNotFoundError)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b'a,b\n"1,2\n')  # an unclosed quote
    with pytest.raises(UserError, match="is not a readable CSV") as err:
        read_csv(bad, what="summary")
    assert err.value.__cause__ is not None and "\n" not in str(err.value)


def test_eval_split_reads_the_data_pipelines_filter_flags():
    from elements.cli import command_parser
    from elements.data import LaionFilter, filters_from_args

    p = command_parser("eval.manifest", "eval split")
    args = p.parse_args(["--data", "d", "--out", "o", "--laion-filter", "--min-aesthetic", "5"])
    assert filters_from_args(args) == LaionFilter(min_aesthetic=5.0, min_similarity=0.25)
    old = p.parse_args(["--data", "d", "--out", "o", "--laion_filter"])  # the old spelling, a hidden alias
    assert filters_from_args(old) == LaionFilter() and "--laion_filter" not in p.format_help()
    assert filters_from_args(p.parse_args(["--data", "d", "--out", "o"])) is None
