"""`moviead ablate`: the spec, the runner's commands and resumption (with a fake executor), the row summary."""

from __future__ import annotations

import json
import math
import sys
import threading
from pathlib import Path

import pytest

from moviead.ablation.runner import (
    AblationPaths,
    AblationRunner,
    ensure_world_data,
    pretrain_world_decoder,
    stage2_metrics,
    train_command,
)
from moviead.ablation.spec import AblationSpecError, RunResult, load_spec
from moviead.ablation.summary import format_markdown, summarise, write_summary
from moviead.cli import main
from moviead.config import load_config
from moviead.metrics.distinctive import distinctive_word_counts, distinctive_word_recall

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "configs" / "ablations" / "toy.yaml"


def test_the_toy_spec_names_every_row_the_issue_asks_for():
    spec = load_spec(SPEC)
    tables = {(row.paper, row.table) for row in spec.rows.values()}
    assert {("LoCo-MAD", "Table 1"), ("LoCo-MAD", "Table 4"), ("LoCo-MAD", "Table 5"), ("LoCo-MAD", "Table 6"),
            ("DistinctAD", "Stage-II"), ("DistinctAD", "Stage-I"), ("FocusedAD", "Table 1")} <= tables
    assert spec.seeds == (0, 1, 2)
    assert {"t6_dsm_k2", "t6_dsm_k3", "em_repetition"} <= set(spec.quick_rows)


def test_every_run_of_the_toy_spec_resolves_to_a_valid_config(tmp_path):
    """Each run's files + overrides load (unknown keys and bad values would raise), and the resolved values are the
    ones the rows compare: L_c = 10 with top-k for the DSM rows, the last k without it, the Stage-I loss weights."""
    spec = load_spec(SPEC)
    resolved = {}
    for run in spec.runs.values():
        command = train_command(spec, AblationRunner(spec, tmp_path).paths, tmp_path / "mad", 1, run)
        files = [str(ROOT / f) for f in run.files]
        overrides = [c for c in command[4:] if "=" in c and not c.endswith(".yaml")]
        resolved[run.name] = load_config(files, overrides)
    assert resolved["loco_dsm_k3"].captioning.context_size == 10 and resolved["loco_dsm_k3"].captioning.dsm.top_k == 3
    assert resolved["loco_dsm_k2"].captioning.dsm.top_k == 2
    dsm_runs = [n for n, cfg in resolved.items() if n.startswith("loco_") and cfg.captioning.dsm.enabled]
    assert all(resolved[n].captioning.dsm.sentence_encoder.startswith("bow:") for n in dsm_runs)  # the toy tower
    assert [n for n in dsm_runs if resolved[n].captioning.dsm.similarity_prior] == ["loco_dsm_k3_similarity"]
    assert all(resolved[n].captioning.dsm.train_selection == "sample" for n in dsm_runs)  # eq. 7's Sampler
    assert resolved["loco_dsm_k3_similarity"].captioning.dsm.top_k == 3
    assert not resolved["loco_recent_2"].captioning.dsm.enabled and resolved["loco_recent_2"].captioning.context_size == 2
    assert resolved["loco_stage2_only"].captioning.stage1 is None
    stage2 = [name for name, run in spec.runs.items() if run.stage == 2]  # every one on the pretrained toy decoder
    assert spec.world.pretrain_lm_steps > 0
    assert all(Path(resolved[n].captioning.decoder.lm).resolve() == tmp_path.resolve() / "decoders" / "tiny-opt-lm"
               for n in stage2)
    assert resolved["pme_without_vtc_vtm"].pme.losses.vtc == 0 and resolved["pme_without_vtc_vtm"].pme.losses.vtm == 0
    assert resolved["pme_without_vtc"].pme.losses.vtm == 1
    assert resolved["clip_global"].clip.lambda_fw == 0 and resolved["clip_global_frame_word"].clip.lambda_fw > 0
    assert not resolved["distinct_no_em"].captioning.distinct.em_attention
    assert resolved["distinct_lambda_dw_0"].captioning.distinct.lambda_dw == 0
    assert resolved["distinct_full"].captioning.distinct.lambda_dw > 0
    em_runs = [n for n, cfg in resolved.items() if n.startswith("distinct_") and cfg.captioning.distinct.em_attention]
    assert sorted(n for n in em_runs if resolved[n].captioning.distinct.bases_from == "context") == [
        "distinct_full", "distinct_lambda_dw_0"]
    assert resolved["distinct_em_clip_and_context"].captioning.distinct.bases_from == "clip_and_context"
    assert resolved["distinct_em_clip_and_context"].captioning.distinct.lambda_dw > 0
    assert all(cfg.seed == 1 for cfg in resolved.values())
    assert resolved["loco_dsm_k3"].captioning.stage1.endswith("seed1/pme/export")
    focused = {name: cfg for name, cfg in resolved.items() if name.startswith("focused_")}
    assert len(focused) == 6 and all(cfg.data.root.endswith("storyboard") for cfg in focused.values())
    assert focused["focused_b1_no_bank"].captioning.focused.names == "none"
    assert focused["focused_b2_actor_bank"].data.storyboard.best_query == "actor_query"
    assert focused["focused_a1_no_soft_prompt_no_region"].captioning.focused.n_soft == 0
    assert focused["focused_c2_full"].captioning.focused.n_soft > 0
    # every Stage-II run alike: the spec's stage2_common (60 epochs, validation every 2nd) and the tiny recipes'
    # name swap; the Stage-I runs keep their recipe's epochs
    stage2 = [name for name, run in spec.runs.items() if run.stage == 2]
    assert len(stage2) == 18
    assert all(resolved[n].trainer.max_epochs == 60 and resolved[n].trainer.check_val_every_n_epoch == 2
               and resolved[n].captioning.name_swap.enabled for n in stage2)  # fmt: skip
    assert resolved["pme"].trainer.max_epochs == 8 and resolved["clip_global"].trainer.max_epochs < 60


def test_the_quick_spec_keeps_only_the_runs_its_rows_need():
    quick = load_spec(SPEC).restricted()
    assert quick.seeds == (0,)
    assert set(quick.runs) == {"pme", "loco_dsm_k2", "loco_dsm_k3", "loco_recent_2", "loco_recent_3",
                               "distinct_full", "distinct_no_em"}


def _spec_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_a_row_naming_an_unknown_run_is_refused_with_the_known_ones(tmp_path):
    path = _spec_file(tmp_path, """
runs:
  a: {stage: 2, files: [x.yaml]}
rows:
  r: {paper: P, table: T, row: R, metric: cider, better: {run: a}, worse: {run: b}}
""")
    with pytest.raises(AblationSpecError, match=r"unknown run 'b' \(runs: a\)"):
        load_spec(path)


def test_a_stage1_metric_on_a_stage2_run_is_refused(tmp_path):
    path = _spec_file(tmp_path, """
runs:
  a: {stage: 2, files: [x.yaml]}
  b: {stage: 2, files: [x.yaml]}
rows:
  r: {paper: P, table: T, row: R, metric: "stage1:val/t2v_r1", better: {run: a}, worse: {run: b}}
""")
    with pytest.raises(AblationSpecError, match="does not fit run 'a'"):
        load_spec(path)


TINY = """
world: {version: v2, movies: 4, seed: 0}
seeds: [0, 1]
runs:
  s1: {stage: 1, files: [s1.yaml]}
  good: {stage: 2, stage1: s1, files: [s2.yaml]}
  bad: {stage: 2, files: [s2.yaml]}
rows:
  r: {paper: P, table: T, row: good beats bad, metric: cider, better: {run: good}, worse: {run: bad}}
"""


class FakeExecutor:
    """Writes what `moviead make-toy-data/train/evaluate` would, from a table of CIDEr values per (seed, run)."""

    def __init__(self, cider: dict[tuple[int, str], float], fail: set[tuple[int, str]] = frozenset()) -> None:
        self.cider, self.fail, self.commands = cider, fail, []

    def __call__(self, command: list[str], log: Path) -> None:
        self.commands.append(command[3])
        if command[3] == "make-toy-data":
            return
        if command[3] == "train":
            seed = int(next(c for c in command if c.startswith("seed=")).split("=")[1])
            name = next(c for c in command if c.startswith("name=")).split("=")[1]
            if (seed, name) in self.fail:
                raise RuntimeError(f"`train` exited with 1: see {log}")
            folder = Path(next(c for c in command if c.startswith("trainer.default_root_dir=")).split("=")[1]) / name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "metrics.csv").write_text("epoch,step,val/t2v_r1\n0,1,10.0\n1,2,12.5\n", encoding="utf-8")
            return
        folder = Path(command[command.index("--checkpoint") + 1])
        seed, name = int(folder.parent.name.removeprefix("seed")), folder.name
        out = folder / "eval" / "test-oracle"
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"mode": "oracle", "cider": self.cider[(seed, name)]}))
        (out / "predictions.jsonl").write_text(
            json.dumps({"movie": "m", "index": 0, "gt": "Ada opens the door.", "pred": "Ada opens a box."}) + "\n")


def test_the_runner_trains_evaluates_and_resumes_without_repeating_finished_runs(tmp_path):
    spec = load_spec(_spec_file(tmp_path, TINY))
    fake = FakeExecutor({(0, "good"): 0.5, (0, "bad"): 0.4, (1, "good"): 0.6, (1, "bad"): 0.3})
    results = AblationRunner(spec, tmp_path / "out", jobs=2, execute=fake).run()
    assert results[(0, "s1")].metrics == {"-": {"stage1:val/t2v_r1": 12.5}}
    assert results[(1, "good")].metrics["oracle"]["cider"] == 0.6
    assert results[(1, "good")].metrics["oracle"]["distinct_recall"] == pytest.approx(2 / 3)  # ada, opens of 3
    assert sorted(fake.commands) == sorted(["make-toy-data"] + ["train"] * 6 + ["evaluate"] * 4)
    [row] = summarise(spec, results)
    assert row.holds is True and row.seeds_holding == 2
    assert row.better.mean == pytest.approx(0.55) and row.worse.low == pytest.approx(0.3)
    again = FakeExecutor({})
    assert AblationRunner(spec, tmp_path / "out", execute=again).run()[(0, "good")].metrics["oracle"]["cider"] == 0.5
    assert again.commands == []  # the world and every finished run are read back


class PretrainingBesideStage1(FakeExecutor):
    """The decoder pretraining waits (at most 20 s) for a Stage-I training to start: it sees one only when the two run
    side by side. ``fail_pretraining``: it then exits with an error."""

    def __init__(self, cider: dict[tuple[int, str], float], fail_pretraining: bool = False) -> None:
        super().__init__(cider)
        self.stage1_started, self.events, self.fail_pretraining = threading.Event(), [], fail_pretraining
        self.side_by_side = False

    def __call__(self, command: list[str], log: Path) -> None:
        if command[3] == "pretrain-toy-lm":
            self.side_by_side = self.stage1_started.wait(timeout=20)
            self.events.append("pretraining ended")
            if self.fail_pretraining:
                raise RuntimeError(f"`pretrain-toy-lm` exited with 1: see {log}")
            return
        if command[3] == "train":
            name = next(c for c in command if c.startswith("name=")).split("=")[1]
            self.events.append(f"train {name}")
            if name == "s1":
                self.stage1_started.set()
        super().__call__(command, log)


def test_the_decoder_pretraining_runs_beside_the_stage1_runs_and_before_every_stage2_run(tmp_path):
    spec = load_spec(_spec_file(tmp_path, TINY.replace("seed: 0}", "seed: 0, pretrain_lm_steps: 7}")))
    fake = PretrainingBesideStage1({(0, "good"): 0.5, (0, "bad"): 0.4, (1, "good"): 0.6, (1, "bad"): 0.3})
    results = AblationRunner(spec, tmp_path / "out", jobs=2, execute=fake).run()
    assert fake.side_by_side  # a Stage-I run started while the pretraining ran
    ended = fake.events.index("pretraining ended")
    stage2 = [i for i, event in enumerate(fake.events) if event in ("train good", "train bad")]
    assert len(stage2) == 4 and min(stage2) > ended
    assert all(result.error is None for result in results.values())


def test_a_failed_decoder_pretraining_skips_the_stage2_runs_only(tmp_path):
    spec = load_spec(_spec_file(tmp_path, TINY.replace("seed: 0}", "seed: 0, pretrain_lm_steps: 7}")))
    fake = PretrainingBesideStage1({}, fail_pretraining=True)
    results = AblationRunner(spec, tmp_path / "out", jobs=2, execute=fake).run()
    assert results[(0, "s1")].error is None and results[(1, "s1")].error is None
    for key in ((0, "good"), (1, "good"), (0, "bad"), (1, "bad")):
        assert results[key].error.startswith("the world's decoder pretraining failed: `pretrain-toy-lm` exited with 1")
    assert not [event for event in fake.events if event in ("train good", "train bad")]


def test_stage2_metrics_add_what_the_context_holds_and_what_the_model_does_with_it(tmp_path):
    """From a run's predictions: the context's name recall and place precision, and the name accuracy when the
    context holds the name (overall and when its ADs name several characters)."""
    spec = load_spec(_spec_file(tmp_path, TINY))
    paths = AblationPaths(tmp_path / "out")
    folder = paths.run_dir(0, "good") / "eval" / "test-oracle"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"mode": "oracle", "cider": 0.5}))
    kettle = {"ad": "Ada opens the kettle.", "subtitles": []}
    rake = {"ad": "Bree drops the rake in the garden.", "subtitles": ["Ada?"]}
    rows = [{"movie": "m", "index": 0, "gt": "Ada inspects the ladle.", "pred": "Ada inspects the ladle.",
             "context": [rake, kettle]},  # in context, two names, right
            {"movie": "m", "index": 1, "gt": "Ada opens the kettle.", "pred": "Bree opens the kettle.",
             "context": [kettle]},  # in context, one name, wrong
            {"movie": "m", "index": 2, "gt": "Cai opens the kettle.", "pred": "Cai opens the kettle.",
             "context": [kettle]}]  # not in context
    (folder / "predictions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    metrics = stage2_metrics(spec, paths, 0, spec.runs["good"])["oracle"]
    assert metrics["cider"] == 0.5
    assert metrics["context_name_recall"] == pytest.approx(2 / 3)
    assert metrics["name_acc_in_context"] == pytest.approx(1 / 2)
    assert metrics["context_several_names"] == pytest.approx(1 / 2)
    assert metrics["name_acc_several_names"] == pytest.approx(1.0)


def test_a_failed_stage1_run_skips_its_stage2_run_and_the_row_is_incomplete_not_passed(tmp_path):
    spec = load_spec(_spec_file(tmp_path, TINY))
    fake = FakeExecutor({(0, "bad"): 0.1, (1, "bad"): 0.1, (1, "good"): 0.9}, fail={(0, "s1")})
    results = AblationRunner(spec, tmp_path / "out", execute=fake).run()
    assert results[(0, "good")].error == "its Stage-I run 's1' failed"
    [row] = summarise(spec, results)
    assert row.holds is None and "seed 0 good: its Stage-I run 's1' failed" in row.missing
    assert row.seeds_holding == 1


def test_a_row_holds_only_when_every_seed_shows_the_sign_and_a_tie_does_not(tmp_path):
    spec = load_spec(_spec_file(tmp_path, TINY.replace("metric: cider,", "metric: repetition, lower_is_better: true,")))
    results = {(0, "good"): RunResult({"oracle": {"repetition": 0.2}}), (0, "bad"): RunResult({"oracle": {"repetition": 0.3}}),
               (1, "good"): RunResult({"oracle": {"repetition": 0.3}}), (1, "bad"): RunResult({"oracle": {"repetition": 0.3}})}
    [row] = summarise(spec, results)
    assert (row.holds, row.seeds_holding) == (False, 1)
    write_summary(spec, [row], tmp_path)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["rows"][0]["holds"] is False and saved["rows"][0]["better"]["values"] == {"0": 0.2, "1": 0.3}
    table = format_markdown(spec, [row])
    assert "| P | T | good beats bad | repetition (lower is better) | good/oracle: 25.00 [20.00, 30.00]" in table
    assert "**no**" in table and "- r: 1 of 2 seeds show the sign" in table


def test_distinctive_word_recall_counts_the_reference_words_absent_from_the_previous_ads():
    rows = [("m", 0, "Ada opens the door.", "Ada opens the door."),
            ("m", 1, "Ada closes the door.", "Ada opens the door."),  # D = {closes}: missed
            ("m", 2, "Bo takes the key.", "Bo drops the key.")]  # context ADs 0-1 (context_ads=2): D = {bo, takes, key}
    assert distinctive_word_counts(rows, context_ads=2) == (3 + 0 + 2, 3 + 1 + 3)
    assert distinctive_word_recall(rows, context_ads=2) == pytest.approx(5 / 7)
    assert math.isnan(distinctive_word_recall([], context_ads=1))
    with pytest.raises(ValueError, match="context_ads must be >= 1"):
        distinctive_word_counts(rows, context_ads=0)


def test_moviead_plot_draws_one_figure_per_paper_table_of_a_summary(tmp_path):
    spec = load_spec(_spec_file(tmp_path, TINY))
    results = {(s, r): RunResult({"oracle": {"cider": v}}) for (s, r), v in
               {(0, "good"): 0.5, (0, "bad"): 0.4, (1, "good"): 0.6, (1, "bad"): 0.3}.items()}
    write_summary(spec, summarise(spec, results), tmp_path)
    assert main(["plot", str(tmp_path / "summary.json"), "--out", str(tmp_path / "plots")]) == 0
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["p_t.png"]
    assert (tmp_path / "plots" / "p_t.png").stat().st_size > 5000


def test_focused_recognition_scores_both_banks_on_the_test_records(tmp_path, toy_root):
    """FocusedAD's part of the sweep: recognition accuracy of the best-query and actor banks on the test movies'
    faces at τ and per τ, with the toy spec's FocusedAD settings, written to recognition.json."""
    from moviead.ablation.command import recognise_test_faces
    from moviead.ablation.recognition import THRESHOLDS
    from moviead.data.formats.storyboard import read_storyboard_json
    from moviead.data.val_split import storyboard_splits

    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (out / "data" / "storyboard").symlink_to(toy_root / "storyboard")
    report = recognise_test_faces(load_spec(SPEC), out)
    records = read_storyboard_json(toy_root / "storyboard" / "storyboard_v2.json")
    test = storyboard_splits((r.movie_id for r in records), 0.17)["test"]
    confident = sum(b.confidence >= 0.7 for r in records if r.movie_id in test for b in r.detections)
    assert report["test_movies"] == test and report["faces"] == confident and report["tau"] == 1.3
    best, actor = report["banks"]["best_query"], report["banks"]["actor_query"]
    assert [t for t, _ in best["sweep"]] == sorted(set(THRESHOLDS) | {1.3})
    assert best["accuracy"] == dict(best["sweep"])[1.3] and 0 < actor["accuracy"] <= 1
    assert best["accuracy"] > actor["accuracy"]  # the toy premise: the actor's photos miss the film's look
    assert json.loads((out / "recognition.json").read_text()) == report


def test_the_summary_shows_recognition_per_bank_and_moviead_plot_draws_the_tau_sweep(tmp_path):
    from moviead.ablation.recognition import BANKS, PLOT_NAME

    report = {"tau": 1.3, "min_confidence": 0.7, "test_movies": ["tt1"], "faces": 40,
              "banks": {name: {"label": label, "accuracy": 0.9 - 0.1 * i,
                               "sweep": [[1.2, 0.8 - 0.1 * i], [1.3, 0.9 - 0.1 * i], [1.4, 0.85]]}
                        for i, (name, label) in enumerate(BANKS.items())}}
    spec = load_spec(_spec_file(tmp_path, TINY))
    results = {(s, r): RunResult({"oracle": {"cider": 0.5}}) for s in (0, 1) for r in ("good", "bad")}
    write_summary(spec, summarise(spec, results), tmp_path, recognition=report)
    markdown = (tmp_path / "summary.md").read_text()
    assert "## FocusedAD: character recognition on the test records" in markdown
    assert "| best-query bank (eqs. 1-3, C2) | 90.00 | 1.3 (90.00) |" in markdown
    assert "| actor bank (B2) | 80.00 | 1.4 (85.00) |" in markdown and f"plots/{PLOT_NAME}" in markdown
    assert json.loads((tmp_path / "summary.json").read_text())["recognition"] == report
    assert main(["plot", str(tmp_path / "summary.json"), "--out", str(tmp_path / "plots")]) == 0
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(["p_t.png", PLOT_NAME])
    assert (tmp_path / "plots" / PLOT_NAME).stat().st_size > 5000


def test_without_a_storyboard_run_there_is_no_recognition_report(tmp_path):
    from moviead.ablation.command import recognise_test_faces

    assert recognise_test_faces(load_spec(_spec_file(tmp_path, TINY)), tmp_path) is None
    assert not (tmp_path / "recognition.json").exists()


def test_seeds_keep_every_row_and_run_on_a_subset_of_the_specs_seeds():
    spec = load_spec(SPEC)
    first = spec.only(["t6_*"]).with_seeds([0])
    assert first.seeds == (0,) and set(first.rows) == {n for n in spec.rows if n.startswith("t6_")}
    assert set(first.runs) == set(spec.only(["t6_*"]).runs)
    with pytest.raises(AblationSpecError, match=r"--seeds \[7\]"):
        spec.with_seeds([7])


def test_rows_by_name_or_prefix_keep_only_the_runs_they_need(tmp_path):
    spec = load_spec(SPEC)
    focused = spec.only(["focused_*"])
    assert set(focused.rows) == {name for name in spec.rows if name.startswith("focused_")} and focused.seeds == spec.seeds
    assert set(focused.runs) == {name for name in spec.runs if name.startswith("focused_")}
    vtc = spec.only(["t5_vtc"])  # a Stage-II row brings the Stage-I runs it builds on
    assert set(vtc.rows) == {"t5_vtc"}
    assert set(vtc.runs) == {"loco_dsm_k3", "pme", "loco_pme_without_vtc", "pme_without_vtc"}
    with pytest.raises(AblationSpecError, match=r"--rows \['nope\*'\] name no row"):
        spec.only(["nope*"])


def test_a_stage2_runs_training_and_evaluation_share_one_subprocess(tmp_path, monkeypatch):
    """The default executor: one `moviead.cli_sequence` subprocess per Stage-II run (train, then evaluate), the
    world and Stage-I trainings alone; the results equal those of the commands run one by one; the world first."""
    spec = load_spec(_spec_file(tmp_path, TINY))
    fake = FakeExecutor({(0, "good"): 0.5, (0, "bad"): 0.4, (1, "good"): 0.6, (1, "bad"): 0.3})
    launched: list[list[str]] = []

    def subprocess_(self, command, log, what=None):
        if command[1:3] == ["-m", "moviead.cli_sequence"]:
            launched.append([c[0] for c in json.loads(command[3])])
            for arguments in json.loads(command[3]):
                fake([sys.executable, "-m", "moviead", *arguments], log)
        else:
            launched.append([command[3]])
            fake(command, log)

    monkeypatch.setattr(AblationRunner, "_subprocess", subprocess_)
    results = AblationRunner(spec, tmp_path / "out", jobs=2).run()
    assert launched[0] == ["make-toy-data"]
    assert sorted(launched[1:]) == sorted([["train"]] * 2 + [["train", "evaluate"]] * 4)
    assert results[(1, "good")].metrics["oracle"]["cider"] == 0.6


def test_the_sequence_runs_moviead_commands_in_order_and_stops_at_the_first_failure(monkeypatch, capsys):
    import moviead.cli
    from moviead.cli_sequence import main as sequence_main

    calls: list[list[str]] = []
    monkeypatch.setattr(moviead.cli, "main", lambda argv: calls.append(list(argv)) or (3 if argv[0] == "bad" else 0))
    assert sequence_main([json.dumps([["train", "a.yaml"], ["evaluate", "--checkpoint", "r"]])]) == 0
    assert calls == [["train", "a.yaml"], ["evaluate", "--checkpoint", "r"]]
    calls.clear()
    assert sequence_main([json.dumps([["bad"], ["evaluate"]])]) == 3
    assert calls == [["bad"]]
    assert "$ moviead train a.yaml" in capsys.readouterr().out
    assert sequence_main(['{"not": "a list"}']) == 2 and sequence_main([]) == 2 and sequence_main(["[train"]) == 2


def test_the_world_decoder_is_pretrained_once_when_the_spec_asks(tmp_path):
    """`world.pretrain_lm_steps` > 0: `moviead pretrain-toy-lm --steps N` after the world is written, not again once
    its pretraining.json records N steps, again when the spec asks for another N."""
    spec = load_spec(_spec_file(tmp_path, TINY.replace("seed: 0}", "seed: 0, pretrain_lm_steps: 7}")))
    runner = AblationRunner(spec, tmp_path / "out", execute=lambda command, log: calls.append(command[3:]))
    calls: list[list[str]] = []
    ensure_world_data(spec, runner.paths, runner.execute)
    pretrain_world_decoder(spec, runner.paths, runner.execute)
    data = str(runner.paths.data)
    assert calls == [calls[0], ["pretrain-toy-lm", "--data", data, "--steps", "7"]] and calls[0][0] == "make-toy-data"
    report = runner.paths.data / "decoders" / "tiny-opt-lm" / "pretraining.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"steps": 7}), encoding="utf-8")
    calls.clear()
    pretrain_world_decoder(spec, runner.paths, runner.execute)
    assert calls == []
    report.write_text(json.dumps({"steps": 3}), encoding="utf-8")
    pretrain_world_decoder(spec, runner.paths, runner.execute)
    assert calls == [["pretrain-toy-lm", "--data", data, "--steps", "7"]]
