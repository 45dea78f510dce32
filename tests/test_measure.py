import json
import os

import numpy as np
import pytest

from study.measure import Config, Harness, HarnessSettings, RawLog, config_key


class Counter:
    def __init__(self, fail_after=None):
        self.n = 0
        self.fail_after = fail_after
        self.closed = False

    def run(self):
        self.n += 1
        if self.fail_after is not None and self.n > self.fail_after:
            raise RuntimeError("boom")

    def close(self):
        self.closed = True


def settings(**kw):
    base = dict(warmup=1, min_samples=10, max_samples=40, max_seconds=100.0, rel_ci_halfwidth=0.05,
                block_size=5, seed=1)
    base.update(kw)
    return HarnessSettings(**base)


def cfg(name, sess=None, cores=None):
    sess = sess or Counter()
    return Config(columns={"model": name}, opener=lambda: sess, cores=cores), sess


def test_stops_at_min_samples_when_latency_is_constant(tmp_path, fake_clock):
    log = RawLog(tmp_path / "raw.jsonl")
    c, sess = cfg("a")
    h = Harness(settings(), log, clock=fake_clock([10.0]), progress=False)
    df = h.run([c])
    assert len(df) == 10                       # min_samples, CI width 0
    assert set(df.latency_ms) == {10.0}
    assert df.stop_reason.iloc[0] == "ci_width"
    assert sess.n == 10 + 2 * 1                # two blocks, one warm-up each


def test_noisy_config_runs_to_max_samples(tmp_path, fake_clock):
    lat = list(np.random.default_rng(0).uniform(1, 100, 1000))
    h = Harness(settings(max_samples=25), RawLog(tmp_path / "raw.jsonl"), clock=fake_clock(lat), progress=False)
    c, _ = cfg("a")
    df = h.run([c])
    assert len(df) == 25 and df.stop_reason.iloc[0] == "max_samples"


def test_time_budget_stops_config(tmp_path, fake_clock):
    lat = list(np.random.default_rng(0).uniform(100, 900, 1000))
    h = Harness(settings(max_seconds=3.0, max_samples=1000, min_samples=3), RawLog(tmp_path / "r.jsonl"),
                clock=fake_clock(lat), progress=False)
    c, _ = cfg("a")
    df = h.run([c])
    assert df.stop_reason.iloc[0] == "max_seconds"
    assert df.latency_ms.sum() >= 3000.0 and df.latency_ms.sum() - df.latency_ms.iloc[-1] < 3000.0


def test_time_budget_never_cuts_below_min_samples(tmp_path, fake_clock):
    h = Harness(settings(max_seconds=0.5, max_samples=1000, min_samples=12), RawLog(tmp_path / "r.jsonl"),
                clock=fake_clock(list(np.random.default_rng(0).uniform(100, 900, 1000))), progress=False)
    df = h.run([cfg("a")[0]])
    assert len(df) == 12 and df.stop_reason.iloc[0] == "max_seconds"


def test_configurations_are_interleaved_in_seeded_random_order(tmp_path, fake_clock):
    log = RawLog(tmp_path / "raw.jsonl")
    lat = list(np.random.default_rng(0).uniform(1, 100, 1000))
    configs = [cfg(n)[0] for n in "abcd"]
    Harness(settings(max_samples=20), log, clock=fake_clock(lat), progress=False).run(configs)
    order = [json.loads(r["config"])["model"] for r in log.records("block")]
    assert sorted(set(order)) == list("abcd")
    rounds = [order[i:i + 4] for i in range(0, 16, 4)]
    assert all(sorted(r) == list("abcd") for r in rounds)    # every config visited once per round
    assert len({tuple(r) for r in rounds}) > 1               # order reshuffled between rounds
    # same seed, same order
    log2 = RawLog(tmp_path / "raw2.jsonl")
    Harness(settings(max_samples=20), log2, clock=fake_clock(lat), progress=False).run([cfg(n)[0] for n in "abcd"])
    assert order == [json.loads(r["config"])["model"] for r in log2.records("block")]


def test_every_sample_is_in_the_log_before_the_next_run(tmp_path, fake_clock):
    log_path = tmp_path / "raw.jsonl"
    seen = []

    class Peeking(Counter):
        def run(self):
            super().run()
            seen.append(sum(1 for line in open(log_path) if '"sample"' in line) if log_path.exists() else 0)

    sess = Peeking()
    c = Config(columns={"model": "a"}, opener=lambda: sess)
    Harness(settings(warmup=0, min_samples=10, max_samples=10), RawLog(log_path), clock=fake_clock([5.0, 6.0]),
            progress=False).run([c])
    # at the k-th run, k-1 samples are already on disk
    assert seen[:10] == list(range(10))


def test_killed_run_resumes_whole_blocks_only(tmp_path, fake_clock):
    """A block counts once its block record is in: the samples of the block cut by the kill
    are discarded and measured again, so the resumed run has the rows an uninterrupted one has,
    every one with its block's sensor readings."""
    log = RawLog(tmp_path / "raw.jsonl")
    lat = list(np.random.default_rng(0).uniform(1, 100, 1000))
    s = settings(max_samples=30, min_samples=30)

    class Killer(Counter):
        def run(self):
            super().run()
            if self.n == 18:
                raise KeyboardInterrupt  # Ctrl-C mid-block (the third block: 1 warm-up + 5 per block)

    c = Config(columns={"model": "a"}, opener=lambda: Killer(), cores=None)
    first = Harness(s, log, clock=fake_clock(lat), progress=False)
    with pytest.raises(KeyboardInterrupt):
        first.run([c])
    assert len(log.records("sample")) == 14 and len(log.records("block")) == 2   # 4 samples of a cut block
    # a line cut short by a kill is skipped
    with open(log.path, "a") as f:
        f.write('{"type": "sample", "config": ')
    sess = Counter()
    c2 = Config(columns={"model": "a"}, opener=lambda: sess)
    df = Harness(s, RawLog(log.path), clock=fake_clock(lat), progress=False).run([c2])
    assert len(df) == 30 and sorted(df["sample"]) == list(range(30))
    assert sess.n == 20 + 4 * 1                    # the 20 missing samples in 4 blocks (+1 warm-up each)
    kept = df[df.run_id == first.run_id]
    assert sorted(kept["block"].unique()) == [0, 1] and len(kept) == 10  # the cut block's 4 samples are gone
    assert df.stop_reason.eq("max_samples").all()


def test_killed_after_its_last_block_the_stop_is_recorded_on_resume(tmp_path, fake_clock):
    log = RawLog(tmp_path / "raw.jsonl")
    s = settings(max_samples=10, min_samples=10)
    Harness(s, log, clock=fake_clock([4.0, 5.0]), progress=False).run([cfg("a")[0]])
    lines = log.path.read_text().splitlines()
    assert json.loads(lines[-1])["type"] == "done"
    log.path.write_text("\n".join(lines[:-1]) + "\n")           # killed before the done record
    c, sess = cfg("a")
    df = Harness(s, RawLog(log.path), clock=fake_clock([9.0]), progress=False).run([c])
    assert sess.n == 0 and len(df) == 10 and df.stop_reason.eq("max_samples").all()


def test_an_independent_run_ignores_the_log_and_returns_its_own_samples(tmp_path, fake_clock):
    log = RawLog(tmp_path / "raw.jsonl")
    s = settings(max_samples=10, min_samples=10)
    Harness(s, log, clock=fake_clock([4.0]), progress=False).run([cfg("a")[0]])
    c, sess = cfg("a")
    h = Harness(s, RawLog(log.path), clock=fake_clock([9.0]), progress=False)
    df = h.run([c], resume=False)
    assert sess.n == 10 + 2 and len(df) == 10 and set(df.latency_ms) == {9.0} and set(df.run_id) == {h.run_id}


def test_a_failure_retried_with_success_is_not_a_failure(tmp_path, fake_clock):
    from study.measure import failures_frame

    log = RawLog(tmp_path / "raw.jsonl")
    s = settings(max_samples=10, min_samples=10)
    bad = Config(columns={"model": "a"}, opener=lambda: (_ for _ in ()).throw(RuntimeError("busy")))
    Harness(s, log, clock=fake_clock([4.0]), progress=False).run([bad])
    assert len(failures_frame(log, [bad], s)) == 1
    c, _ = cfg("a")
    df = Harness(s, RawLog(log.path), clock=fake_clock([4.0]), progress=False).run([c])
    assert len(df) == 10 and len(failures_frame(log, [c], s)) == 0 and df.attrs["failed"] == {}


def test_complete_marker_starts_a_fresh_session(tmp_path, fake_clock):
    log = RawLog(tmp_path / "raw.jsonl")
    Harness(settings(), log, clock=fake_clock([10.0]), progress=False).run([cfg("a")[0]])
    log.mark_complete()
    c, sess = cfg("a")
    df = Harness(settings(), RawLog(log.path), clock=fake_clock([20.0]), progress=False).run([c])
    assert set(df.latency_ms) == {20.0} and sess.n > 0
    assert len(RawLog(log.path).records("sample", current=False)) == 20


def test_other_settings_or_environment_are_not_merged(tmp_path, fake_clock):
    log = RawLog(tmp_path / "raw.jsonl")
    Harness(settings(), log, clock=fake_clock([10.0]), progress=False, env={"host": "a"}).run([cfg("a")[0]])
    df = Harness(settings(), RawLog(log.path), clock=fake_clock([20.0]), progress=False,
                 env={"host": "b"}).run([cfg("a")[0]])
    assert set(df.latency_ms) == {20.0}


def test_failing_configuration_is_recorded_and_others_go_on(tmp_path, fake_clock):
    log = RawLog(tmp_path / "raw.jsonl")
    bad = Config(columns={"model": "bad"}, opener=lambda: (_ for _ in ()).throw(RuntimeError("no GPU")))
    good, _ = cfg("good")
    df = Harness(settings(), log, clock=fake_clock([3.0]), progress=False).run([bad, good])
    assert set(df.model) == {"good"}
    assert "no GPU" in list(df.attrs["failed"].values())[0]


def test_sessions_closed_and_lru_bounded(tmp_path, fake_clock):
    sessions = {}

    def make(n):
        def opener():
            sessions.setdefault(n, []).append(Counter())
            return sessions[n][-1]
        return Config(columns={"model": n}, opener=opener)

    lat = list(np.random.default_rng(0).uniform(1, 100, 1000))
    Harness(settings(max_samples=15, max_open_sessions=2), RawLog(tmp_path / "r.jsonl"), clock=fake_clock(lat),
            progress=False).run([make(n) for n in "abc"])
    assert all(s.closed for lst in sessions.values() for s in lst)
    assert any(len(lst) > 1 for lst in sessions.values())  # evicted and reopened


def test_cores_are_applied_and_recorded(tmp_path, fake_clock):
    allowed = sorted(os.sched_getaffinity(0))
    seen = []

    class Where(Counter):
        def run(self):
            super().run()
            seen.append(sorted(os.sched_getaffinity(0)))

    c = Config(columns={"model": "a"}, opener=lambda: Where(), cores=(allowed[0],))
    df = Harness(settings(), RawLog(tmp_path / "r.jsonl"), clock=fake_clock([1.0]), progress=False).run([c])
    assert all(s == [allowed[0]] for s in seen)
    assert set(df.cores) == {str(allowed[0])}
    assert sorted(os.sched_getaffinity(0)) == allowed  # restored


def test_sensor_blocks_recorded_with_explicit_unavailable(tmp_path, fake_clock):
    class Dev:
        def read_sensors(self):
            return {"cpu_freq": {"status": "unavailable", "why": "test"}, "gpu": {"gpus": [{"clocks.sm": "1980",
                    "temperature.gpu": "40", "power.draw": "100.5"}]}, "thermal": {"z": 41.0},
                    "cpu_governor": {"0": "performance"}}

    log = RawLog(tmp_path / "r.jsonl")
    df = Harness(settings(), log, Dev(), clock=fake_clock([1.0]), progress=False).run([cfg("a")[0]])
    b = log.records("block")[0]
    assert b["sensors_before"]["cpu_freq"]["status"] == "unavailable"
    assert df.gpu_sm_mhz_before.iloc[0] == 1980.0 and df.temp_max_c_after.iloc[0] == 41.0
    assert np.isnan(df.cpu_mhz_mean_before.iloc[0]) and df.cpu_governor_before.iloc[0] == "performance"


@pytest.mark.parametrize("bad", [dict(min_samples=0), dict(max_samples=3, min_samples=5), dict(block_size=0),
                                 dict(rel_ci_halfwidth=0), dict(max_seconds=0), dict(cooldown_s=-1)])
def test_bad_settings_rejected(bad):
    with pytest.raises(ValueError):
        settings(**bad)


def test_unknown_setting_rejected():
    with pytest.raises(ValueError, match="unknown harness settings"):
        HarnessSettings.from_params({"warmup": 1, "nonsense": 2})


def test_config_key_is_order_independent():
    assert config_key({"a": 1, "b": 2}) == config_key({"b": 2, "a": 1})
