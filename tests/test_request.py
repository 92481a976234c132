"""bench.request.SweepRequest: one sweep's options parsed and checked once, for ``bench run``,
``bench suite`` and the pytest plugin alike (the same value gives the same error line at every door).

Everything here is in-process and starts no worker (the plugin's sessions run through ``pytester``).
"""

from __future__ import annotations


import pytest

from bench.cli import main
from bench.errors import UsageError
from bench.model.strategy import MAX_PROCESSES, Strategy, usable_cores
from bench.request import SweepRequest, default_processes, parse_device_list


from support.plugin import PLUGIN


# ---------------------------------------------------------------- valid values


def test_parse_gives_typed_checked_values(tmp_path):
    out = tmp_path / "out"
    request = SweepRequest.parse(
        workload="lorenz", size="full", processes="1-2,4", devices="cpu", threads="2", options=["epochs=1"],
        label="lab", sample_interval="0.2", trial_timeout="30", out_dir=out, force=True, command=["bench", "run"],
    )
    assert (request.workload, request.size, request.processes, request.devices) == ("lorenz", "full", (1, 2, 4), ("cpu",))
    assert request.threads == 2 and request.options["epochs"] == "1" and request.label == "lab"
    assert request.sample_interval == 0.2 and request.trial_timeout == 30.0
    assert request.engine == "local" and request.engine_options == {}
    assert request.out_dir == str(out) and not out.exists()  # checked, not created: the sweep creates it
    assert request.strategies() == [Strategy("cpu", n, 2, 1) for n in (1, 2, 4)]
    kwargs = request.sweep_kwargs()
    assert kwargs["out_dir"] == str(out) and kwargs["sample_interval"] == 0.2 and kwargs["trial_timeout"] == 30.0
    assert kwargs["force"] is True and kwargs["command"] == ("bench", "run") and kwargs["resume_from"] is None


def test_defaults_are_the_sweeps():
    request = SweepRequest.parse()
    assert request.workload is None and request.size == "quick" and request.devices == ("cpu",)
    assert request.processes == tuple(int(n) for n in default_processes().split(","))
    assert request.sample_interval == 0.5 and request.trial_timeout is None and request.threads is None
    assert request.out_dir is None and "out_dir" not in request.sweep_kwargs()


def test_default_processes_is_one_and_the_usable_cores():
    n = usable_cores()
    assert default_processes() == ("1" if n == 1 else f"1,{n}")


def test_options_data_offline_and_model(tmp_path, monkeypatch):
    monkeypatch.delenv("XPUBENCH_OFFLINE", raising=False)
    data = tmp_path / "imdb.npz"
    data.write_bytes(b"x")
    request = SweepRequest.parse(workload="predict_modes", options=["rows=10"], data=str(data), offline=True,
                                 model="lorenz")
    assert request.options == {"rows": "10", "data": str(data.resolve()), "offline": "1", "model": "lorenz"}
    assert SweepRequest.parse(options={"epochs": 2}).options == {"epochs": "2"}  # a mapping is taken as split
    monkeypatch.setenv("XPUBENCH_OFFLINE", "1")
    assert SweepRequest.parse().options == {"offline": "1"}


def test_create_out_dir_makes_and_resolves_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    request = SweepRequest.parse(out_dir="made/here", create_out_dir=True)
    assert (tmp_path / "made" / "here").is_dir() and request.out_dir == str((tmp_path / "made" / "here").resolve())


def test_a_process_count_above_the_cores_is_a_note_not_an_error():
    n = usable_cores() + 1
    if n > MAX_PROCESSES:
        pytest.skip("more usable cores than the largest process count")
    request = SweepRequest.parse(processes=f"1,{n}")
    assert request.processes == (1, n)
    assert request.notes == (f"process count {n} is above the {n - 1} usable cores: workers will share cores",)


def test_devices_known_but_unavailable_are_kept_for_the_plugin():
    assert parse_device_list("cpu,all") == ("cpu", "data_parallel", "gpu", "mirrored")
    assert parse_device_list("all", require_available=False) == ("cpu", "data_parallel", "gpu", "mirrored")
    request = SweepRequest.parse(devices="cpu,gpu", require_available=False)
    assert request.devices == ("cpu", "gpu")
    assert set(request.unavailable()) <= {"gpu"}  # whatever this machine has: the cpu always runs


def test_for_workload_checks_the_workload_and_keeps_the_rest(tmp_path):
    shared = SweepRequest.parse(processes="1,2", out_dir=tmp_path / "o")
    one = shared.for_workload("lorenz")
    assert one.workload == "lorenz" and one.processes == (1, 2) and one.out_dir == shared.out_dir
    with pytest.raises(UsageError, match=r"unknown workload 'nope' \(choose from: .*lorenz") as err:
        shared.for_workload("nope")
    assert err.value.field == "workload"


def test_sweep_is_built_from_the_request(tmp_path):
    request = SweepRequest.parse(workload="lorenz", processes="1,2", options=["epochs=1"], sample_interval=0.25,
                                 out_dir=tmp_path / "o", label="lab")
    sweep = request.sweep()
    assert sweep.workload.name == "lorenz" and sweep.size == "quick"
    assert sweep.strategies == request.strategies() and sweep.sample_interval == 0.25
    assert sweep.options == dict(request.options) and sweep.engine == "local"
    assert list((tmp_path / "o").iterdir()) == []  # no result file before the sweep runs
    with pytest.raises(UsageError, match="no workload"):
        SweepRequest.parse().sweep()


# ---------------------------------------------------------------- bad values: one line, the value, the choices

RANGE = "expected a whole number from 1 to 256"

BAD = [
    # (keyword arguments, the field, what the message must say)
    ({"workload": "nosuch"}, "workload", ["'nosuch'", "choose from", "lorenz"]),
    ({"size": "huge"}, "size", ["unknown size 'huge' (choose from: quick, full)"]),
    ({"processes": "0"}, "processes", ["bad process count '0'", RANGE]),
    ({"processes": "two"}, "processes", ["'two'", RANGE]),
    ({"processes": "4-2"}, "processes", ["bad process range '4-2'", "low-high"]),
    ({"processes": "10,000"}, "processes", ["'000'", RANGE, "in processes '10,000'"]),
    ({"processes": "1,,2"}, "processes", ["''", RANGE]),
    ({"devices": "tpu"}, "devices", ["unknown device 'tpu' (choose from: cpu, data_parallel, gpu, mirrored)"]),
    ({"devices": " , "}, "devices", ["bad device list ' , ' (choose from: cpu, data_parallel, gpu, mirrored, all)"]),
    ({"threads": "0"}, "threads", ["bad thread count '0'", RANGE]),
    ({"trial_timeout": "-3"}, "trial_timeout", ["'-3'", "positive number of seconds"]),
    ({"trial_timeout": "nan"}, "trial_timeout", ["'nan'", "positive number of seconds"]),
    ({"sample_interval": "soon"}, "sample_interval", ["bad sample interval 'soon'", "positive number of seconds"]),
    ({"sample_interval": 0.01}, "sample_interval", ["sample_interval 0.01 is below the floor 0.05 s"]),
    ({"options": ["epochs"]}, "options", ["bad workload option 'epochs' (expected key=value)"]),
    ({"workload": "lorenz", "options": ["nope=1"]}, "options", ["'nope'", "choose from", "epochs"]),
    ({"workload": "predict_modes", "options": ["min_time=abc"]}, "options", ["min_time='abc'", "a number > 0"]),
    ({"data": "missing.npz"}, "options", ["data file 'missing.npz' does not exist"]),
    ({"engine": "slurm"}, "engine", ["unknown cluster engine 'slurm' (choose from: local, ray)"]),
    ({"address": "auto"}, "engine", ["address 'auto' needs engine (choose from: ray)"]),
    ({"out_dir": "IN/a_file"}, "out_dir", ["a_file", "is a file, not a directory"]),
    ({"out_dir": "IN/a_file/sub"}, "out_dir", ["a_file", "is a file"]),
    ({"resume": "IN/missing.json"}, "resume", ["missing.json", "no such file"]),
]


@pytest.mark.parametrize("kwargs, field, needles", BAD, ids=[f"{f}-{i}" for i, (_, f, _) in enumerate(BAD)])
def test_bad_value_raises_one_line_naming_it(tmp_path, monkeypatch, kwargs, field, needles):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("x")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    kwargs = {k: v.replace("IN/", f"{tmp_path}/") if isinstance(v, str) else v for k, v in kwargs.items()}
    with pytest.raises(UsageError) as err:
        SweepRequest.parse(**kwargs)
    message = str(err.value)
    assert "\n" not in message and err.value.field == field
    for needle in needles:
        assert needle in message, (needle, message)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing created


def test_a_caller_names_its_own_options():
    names = {"processes": "--processes", "sample_interval": "--sample-interval", "engine": "--cluster",
             "address": "--address"}
    with pytest.raises(UsageError, match=r"in --processes '10,000'$"):
        SweepRequest.parse(processes="10,000", names=names)
    with pytest.raises(UsageError, match=r"^--sample-interval 0.01 is below the floor"):
        SweepRequest.parse(sample_interval="0.01", names=names)
    with pytest.raises(UsageError, match=r"^--address 'auto' needs --cluster \(choose from: ray\)$"):
        SweepRequest.parse(address="auto", names=names)


def test_an_unavailable_device_is_an_error_only_when_required(monkeypatch):
    from bench.engines.devices import get_device

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    reason = get_device("gpu").availability()
    if reason is None:
        pytest.skip("a GPU is visible despite CUDA_VISIBLE_DEVICES=''")
    with pytest.raises(UsageError) as err:
        SweepRequest.parse(devices="gpu")
    assert str(err.value) == reason and err.value.field == "devices"
    assert SweepRequest.parse(devices="gpu", require_available=False).unavailable() == {"gpu": reason}


# ---------------------------------------------------------------- the same error line from the CLI and the plugin

SAME = [
    # (bench run arguments, the plugin's option)
    (["--size", "huge"], "--xpu-size=huge"),
    (["--device", "tpu"], "--xpu-device=tpu"),
    (["--device", ","], "--xpu-device=,"),
    (["--processes", "0"], "--xpu-processes=0"),
    (["--processes", "4-2"], "--xpu-processes=4-2"),
    (["--opt", "epochs"], "--xpu-option=epochs"),
    (["--sample-interval", "0.01"], "--xpu-sample-interval=0.01"),
    (["--sample-interval", "soon"], "--xpu-sample-interval=soon"),
]


@pytest.mark.parametrize("cli_args, plugin_arg", SAME, ids=[p for _, p in SAME])
def test_cli_and_plugin_give_the_same_error_for_the_same_value(pytester, capsys, cli_args, plugin_arg):
    option = plugin_arg.split("=")[0]
    code = main(["run", "lorenz", *cli_args, "--out", str(pytester.path / "never")])
    cli_line = capsys.readouterr().err.rstrip("\n")
    assert code == 2 and "\n" not in cli_line and cli_line.startswith("error: ")

    pytester.makepyfile("def test_never():\n    raise AssertionError('ran')\n")
    result = pytester.runpytest(*PLUGIN, plugin_arg)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    (plugin_line,) = [line for line in result.errlines if line.strip()]
    assert plugin_line.startswith("ERROR: ")

    # the plugin names the option its message is about; the rest of the line is bench run's
    message = plugin_line[len("ERROR: "):]
    message = message[len(f"{option}: "):] if message.startswith(f"{option}: ") else message
    assert message.replace(option, cli_args[0]) == cli_line[len("error: "):]
    assert not (pytester.path / "never").exists()
