"""The command line: flags made from TrainConfig, one-line errors, thin commands."""

import pytest

from mnist_cnn import cli, models


def test_summary_command_prints_the_table(capsys):
    assert cli.main(["summary", "classic"]) == 0
    out = capsys.readouterr().out
    for layer in models.build("classic").layers:
        shape = layer.output.shape[1:]
        assert layer.name in out and ", ".join(map(str, shape)) in out
    assert "225,034" in out


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--epochs", "0", "epochs must be at least 1, not 0"),
        ("--batch-size", "-4", "batch_size must be at least 1, not -4"),
        ("--lr", "0", "lr must be at least 1e-12, not 0.0"),
        ("--shift", "-1", "shift must be at least 0, not -1.0"),
        ("--rotate", "-3", "rotate must be at least 0, not -3.0"),
        ("--label-smoothing", "1.5", "label_smoothing must be below 1, not 1.5"),
        ("--zoom", "2", "zoom must be below 1, not 2.0"),
        ("--epochs", "ten", "'ten' is not a number"),
        ("--optimizer", "lion", "optimizer must be one of adamw, adam, sgd, not 'lion'"),
    ],
)
def test_cli_rejects_impossible_training_values_before_starting(
    capsys, tmp_path, flag, value, message
):
    """The check is TrainConfig's own (recipes.check), run by argparse on each flag."""
    with pytest.raises(SystemExit) as stop:
        cli.main(["train", flag, value, "--out", str(tmp_path / "x")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: {message}" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_old_recipe_name_gets_one_clear_message(capsys, tmp_path):
    assert cli.main(["train", "--recipe", "seed", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "now called 'classic'" in err and "--recipe classic" in err
    assert cli.main(["train", "--recipe", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown recipe 'nope'" in capsys.readouterr().err
    assert cli.main(["train", "--model", "fast", "--out", str(tmp_path / "x")]) == 2
    assert "train takes a recipe as --recipe fast" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_every_training_setting_is_a_flag_with_its_default_in_the_help(capsys):
    import dataclasses

    from mnist_cnn.recipes import TrainConfig

    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(TrainConfig):
        if f.metadata["flag"]:
            flag = "--" + f.name.replace("_", "-")
            assert flag in text and f"(default {f.default}" in text, flag


def test_resume_with_a_bad_config_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for content, message in [
        ("[1, 2]", "does not hold a JSON object"),
        ('{"epochs": 2, "colour": "red"}', "unknown settings: colour"),
        ('{"epochs": "two"}', "epochs must be int"),
        ('{"model": "seed"}', "replace its model 'seed' by 'classic'"),
    ]:
        (run / "config.json").write_text(content)
        assert cli.main(["train", "--resume", str(run)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (content, err)


def test_cli_reports_user_errors_in_one_line(tmp_path, capsys, mnist_dir):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = cli.main(
        ["train", "--dry-run", "--data-dir", str(mnist_dir), "--out", str(blocker / "run")]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mnist-cnn: error: cannot write") and "Traceback" not in err
    assert cli.main(["evaluate", str(tmp_path / "missing.keras")]) == 2
    assert "no model at" in capsys.readouterr().err
