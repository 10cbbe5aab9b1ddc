"""``pcsim bench``'s "spiking" row in a short form: the hand-built reference
(``sim.bench.spiking_reference``) wires by the fixed fan-in rule, has the neurons and synapses of
pcsim's network and of pcsim's own preflight count, and fires as many spikes; the row's
verdicts follow its targets. No timing is asserted. The reference is built and run on Brian2's
NumPy target here (``numpy_target``: its Cython code, each connection's index copy too, would be
compiled anew in a cold CI; the bench runs both on Cython)."""

from __future__ import annotations

import gc
import json
from collections import Counter

import numpy as np
import pytest
from brian_target import numpy_target
from xdist_groups import BUNDLED, POSNER_SPIKING

from sim.bench import spiking, spiking_reference
from sim.families.hierarchical.spiking import neuron_count, synapse_count
from sim.scenario import load_scenario

SHORT = {"model.neurons": "spiking", "model.spiking.neurons_per_unit": 10,
         "model.spiking.fan_in": 4, "protocol.trials.0.duration_ms": 40.0}


def test_reference_wiring_follows_the_fan_in_rule():
    """Each target neuron of unit a takes K synapses from each pool of each source unit b with
    c_ab != 0 (none from the others), carrying +c_ab / K from the positive pool and -c_ab / K
    from the negative one; with K >= N it takes every neuron once."""
    values = np.array([[1.5, 0.0], [0.0, -2.0], [0.5, 1.0]])
    n = 4
    for k in (3, 6):
        pre, post, carried = spiking_reference.wiring(values, n, k, np.random.default_rng(1))
        taken = min(k, n)
        assert len(pre) == 2 * n * 2 * taken * np.count_nonzero(values)  # 2 N targets a unit
        for target in range(2 * 3 * n):
            unit = (target % (3 * n)) // n
            mine = post == target
            for sign in (0, 1):
                for source in range(2):
                    first = sign * 2 * n + source * n
                    pool = mine & (pre >= first) & (pre < first + n)
                    expected = values[unit, source]
                    assert pool.sum() == (taken if expected else 0)
                    assert np.isclose(carried[pool].sum(), (1 - 2 * sign) * expected)
                    if k >= n and expected:
                        assert Counter(pre[pool]) == {first + i: 1 for i in range(n)}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """pcsim's short run of the spiking hierarchy (its network, timed) and the reference's."""
    import sim

    timer = spiking.NetworkTimer()
    with timer.watching():
        sim.run(spiking.SCENARIO, output=tmp_path_factory.mktemp("spiking") / "run.h5",
                overrides=SHORT)
    scenario = load_scenario(spiking.SCENARIO, SHORT)
    with numpy_target():
        reference = spiking_reference.build(scenario)
        spiking_reference.run(reference)
    return scenario, timer, reference


@pytest.mark.xdist_group(BUNDLED)  # neurons/hierarchy_spiking's code (tests/xdist_groups.py)
def test_reference_has_pcsims_neurons_synapses_and_spikes(both):
    scenario, timer, reference = both
    neurons, synapses, spikes = timer.counted
    assert (neurons, synapses) == spiking.counts(reference.objects)[:2]
    assert (neurons, synapses) == (neuron_count(scenario.model), synapse_count(scenario.model))
    assert neurons == 2 * 10 * (64 + 16 + 4 + 2 * (16 + 4))
    theirs = sum(reference.spike_counts().values())
    print(f"spikes: pcsim {spikes}, reference {theirs}")
    assert spikes > 1000 and abs(spikes - theirs) / theirs <= spiking.SPIKE_TOLERANCE
    timing = timer.timings[-1]
    assert 0 < timing.before_cpu < timing.cpu and timing.loop_cpu > 0


def test_fan_in_keeps_the_synapses_proportional_to_n():
    """Doubling N doubles the synapses (fixed K), in pcsim's count and the reference's (built,
    not run)."""
    from brian2.utils.logger import catch_logs

    ours, theirs = [], []
    for n in (10, 20):
        scenario = load_scenario(spiking.SCENARIO, {**SHORT,
                                                    "model.spiking.neurons_per_unit": n})
        ours.append(synapse_count(scenario.model))
        with catch_logs(), numpy_target():  # Brian2 warns of a network deleted before it ran
            reference = spiking_reference.build(scenario)
            theirs.append(spiking.counts(reference.objects)[1])
            del reference
            gc.collect()
    assert ours[1] == 2 * ours[0]
    assert theirs[1] == 2 * theirs[0]


POSNER_SHORT = {"model.neurons": "spiking", "model.spiking.neurons_per_unit": 10,
                "model.spiking.fan_in": 4,
                **{f"protocol.conditions.{at}.{key}": value for at in range(6)
                   for key, value in (("count", 1), ("duration_ms", 5.0))}}


@pytest.mark.xdist_group(POSNER_SPIKING)
def test_the_preflight_counts_posners_spiking_network(tmp_path):
    """Top-down precision as spikes (precision-error pool, C, C' and C's decoder): the
    preflight's neurons and synapses are those of the network pcsim builds and runs."""
    import sim

    timer = spiking.NetworkTimer()
    with timer.watching():
        sim.run("attention/posner", output=tmp_path / "posner.h5", overrides=POSNER_SHORT)
    model = load_scenario("attention/posner", POSNER_SHORT).model
    neurons, synapses, _ = timer.counted
    assert (neurons, synapses) == (neuron_count(model), synapse_count(model))
    assert neurons == 2 * 10 * (2 + 2 + 1 + 2 + 1 + 2)  # errors 2+2+1, beliefs 2+1, xi 2
    # by hand: 2N x 2K = 160 per non-zero entry of a fan-in connection: target's self, own,
    # signal, W' up, W down (10), context's self, own, signal (3; its W is 0), C into the
    # errors and the precision errors, C' back (6), W into the precision errors (2); C's
    # decoder 2 x 2N; the decoders of 5 error and 3 belief units, 2N each
    assert synapses == 160 * (10 + 3 + 6 + 2) + 2 * 20 + 20 * (5 + 3)


def test_the_reference_refuses_top_down_precision():
    with pytest.raises(ValueError, match="attention"):
        spiking_reference.build(load_scenario("attention/posner", POSNER_SHORT | {
            f"protocol.conditions.{at}.count": 0 for at in range(1, 6)}))  # one trial


def test_the_rows_verdicts_follow_its_targets():
    def record(ratio: float, growth: float, synapses: int, spikes: int) -> spiking.SpikingRecord:
        found = spiking.SpikingRecord(
            neurons=10, reference_neurons=10, synapses=synapses, reference_synapses=100,
            spikes=spikes, reference_spikes=1000, duration_ms=100.0, repeats=5,
            pcsim={"loop_cpu": ratio, "loop_wall": ratio, "before_wall": 0.1,
                   "whole_wall": 2.0, "whole_cpu": 2.0, "network_wall": 1.5,
                   "network_cpu": 1.5},
            reference={"loop_cpu": 1.0, "loop_wall": 1.0, "before_wall": 0.1})
        found.scaling = [spiking.Scaled(n, 10 * n, 100 * n, per_s)
                         for n, per_s in ((50, 1.0), (100, growth), (200, growth ** 2))]
        return found

    assert record(1.1, 2.0, 100, 1050).met() is True
    assert record(1.3, 2.0, 100, 1050).met() is False
    assert record(1.1, 2.3, 100, 1050).met() is False
    assert record(1.1, 2.0, 101, 1050).agrees is False
    assert record(1.1, 2.0, 100, 1200).agrees is False
    text = "\n".join(record(1.3, 2.3, 100, 1000).lines())
    assert "loop ratio (CPU) 1.30" in text and text.count("MISSED") == 3
    row = json.loads(json.dumps(record(1.1, 2.0, 100, 1000).row()))
    assert row["target_met"] is True and row["growth"] == [2.0, 2.0]
