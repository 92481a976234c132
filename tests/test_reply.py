"""Typed worker replies (bench.model.reply): message <-> record, the one failure constructor, the
one place a reply becomes a TrialRecord (bench.sweep.strategy_run.trial_record)."""

from __future__ import annotations

import math
import signal

import pytest

from bench.model import results
from bench.model.reply import Hello, TrialReply
from bench.model.results import TrialError

HELLO = {
    "type": "hello", "pid": 123, "import_s": 2.5, "tensorflow": "2.16.1", "keras": "3.3.3",
    "intra_op_threads": 2, "inter_op_threads": 1, "visible_devices": ["/device:CPU:0"],
    "physical_devices": ["CPU:/physical_device:CPU:0"], "device": "cpu", "replicas": 1, "device_info": {},
    "cuda_visible_devices": None, "build": {"is_cuda_build": False},
}


def test_hello_round_trips_through_a_protocol_line_with_its_key_order():
    hello = Hello.from_message(results.read_message(results.message_line(HELLO)))
    assert hello.pid == 123 and hello.visible_devices == ("/device:CPU:0",) and hello.node is None
    assert hello.as_message() == HELLO
    assert list(hello.as_message()) == list(HELLO)  # what result files record as a worker, key for key


def test_hello_keeps_what_the_pool_and_a_ray_actor_add_and_leaves_out_what_they_did_not():
    import dataclasses

    ray = dataclasses.replace(Hello.from_message(HELLO), node="n1", node_ip="10.0.0.1", tensorflow_preimported=False,
                              startup_s=3.0, index=2, placement="this machine")
    msg = ray.as_message()
    assert msg["node"] == "n1" and msg["tensorflow_preimported"] is False and msg["index"] == 2
    assert "node_error" not in msg and "thread_env" not in msg
    assert list(msg)[-3:] == ["startup_s", "index", "placement"]
    assert Hello.from_message(msg) == ray


def test_hello_tolerates_missing_optional_keys_and_ignores_unknown_ones():
    hello = Hello.from_message({"type": "hello", "pid": 7, "something_new": 1})
    assert hello.pid == 7 and hello.import_s == 0.0 and hello.build == {}
    with pytest.raises(ValueError):
        Hello.from_message({"type": "hello"})
    with pytest.raises(ValueError):
        Hello.from_message({"type": "result", "pid": 7})


def test_result_reply_round_trips_and_nan_quality_becomes_null():
    reply = TrialReply(kind="result", id="t0", wall_s=1.5, cpu_s=2.0, warmup_s=0.1, samples=100.0,
                       quality={"rmse": float("nan"), "acc": 0.5}, extra={"flops": 10}, rss_bytes=5, peak_rss_bytes=9)
    line = results.message_line(reply.as_message())
    assert "NaN" not in line
    back = TrialReply.from_message(results.read_message(line))
    assert back.ok and back.quality == {"rmse": None, "acc": 0.5} and back.extra == {"flops": 10}
    assert (back.wall_s, back.cpu_s, back.peak_rss_bytes, back.rss_bytes) == (1.5, 2.0, 9, 5)
    with pytest.raises(KeyError):
        TrialReply.from_message({"type": "result", "cpu_s": 1.0})  # no wall_s: the pool calls it a protocol error


def test_error_reply_has_one_constructor_and_defaults_for_what_is_missing():
    reply = TrialReply.failure("crash", "worker killed by SIGKILL", signal=9, stderr_tail="tail")
    assert not reply.ok and reply.error == TrialError("crash", "worker killed by SIGKILL", None, 9, "tail")
    assert reply.wall_s is None
    msg = reply.as_message()
    assert msg["type"] == "error" and msg["kind"] == "crash" and msg["signal"] == 9 and "wall_s" not in msg
    assert TrialReply.from_message(msg) == reply
    bare = TrialReply.from_message({"type": "error"})
    assert bare.error == TrialError("crash", "trial failed") and bare.worker == 0
    with pytest.raises(ValueError):
        TrialReply.from_message({"type": "hello"})


def test_stamped_sets_the_worker_and_fills_only_what_is_missing():
    error = TrialReply.failure("exception", "boom").stamped(3, 1.25, node="n1")
    assert (error.worker, error.wall_s, error.node) == (3, 1.25, "n1")
    timed = TrialReply.failure("timeout", "late", wall_s=15.0).stamped(1, 16.0)
    assert timed.wall_s == 15.0 and timed.node is None
    result = TrialReply(kind="result", wall_s=0.5, cpu_s=0.5, node="there").stamped(0, 9.0, node="here")
    assert result.wall_s == 0.5 and result.node == "there"


def test_a_reply_becomes_a_trial_record_in_one_place():
    from bench.sweep.strategy_run import trial_record

    job = {"config": {"id": "t0", "x": 1}}
    ok = trial_record(job, TrialReply(kind="result", wall_s=1.0, cpu_s=0.5, samples=10.0, quality={"q": 1.0},
                                      peak_rss_bytes=42, worker=2), start_s=0.25)
    assert ok.ok and (ok.id, ok.worker, ok.start_s, ok.wall_s, ok.peak_rss_bytes) == ("t0", 2, 0.25, 1.0, 42)
    bad = trial_record(job, TrialReply.failure("startup", "no worker"))
    assert bad.error == TrialError("startup", "no worker") and bad.wall_s == 0.0 and bad.start_s == 0.0
    doc = results.plain(bad)
    assert doc["error"] == {"kind": "startup", "message": "no worker", "exit_code": None, "signal": None,
                            "stderr_tail": ""}


def test_a_sigkill_with_memory_nearly_full_is_called_out_of_memory():
    from bench.sweep.strategy_run import looks_like_oom

    killed = TrialReply.failure("crash", "worker killed by SIGKILL", signal=int(signal.SIGKILL))
    full = [{"sys_mem_used_bytes": 95, "sys_mem_total_bytes": 100}]
    relabelled = looks_like_oom(killed, full)
    assert relabelled.error.kind == "oom" and relabelled.error.message.endswith("95 % used just before")
    assert looks_like_oom(killed, [{"sys_mem_used_bytes": 10, "sys_mem_total_bytes": 100}]) is killed
    assert looks_like_oom(TrialReply.failure("exception", "x"), full).error.kind == "exception"
    assert math.isclose(relabelled.error.signal, 9)
