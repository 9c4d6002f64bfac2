"""The recorder's command/observation pairing, independent of message arrival order."""

import numpy as np

from ros_nodes.frame_pairing import FramePairer

KEYS = ["observation.state", "observation.environment_state"]


def obs(pairer, stamp, value):
    """Both keys observed at ``stamp``, state = value, environment_state = -value."""
    frames = pairer.observe(KEYS[0], stamp, np.array([value]))
    return frames + pairer.observe(KEYS[1], stamp, np.array([-value]))


def summary(frames):
    return [(f.stamp, float(f.observation[KEYS[0]][0]), float(f.action[0])) for f in frames]


def test_command_before_its_observations_waits_and_pairs_exactly():
    pairer = FramePairer(KEYS)
    assert obs(pairer, 100, 1.0) == []
    # the command answering stamp 200 overtakes the observations of stamp 200
    assert pairer.command(200, np.array([2.5])) == []
    assert pairer.waiting == 1
    assert pairer.observe(KEYS[0], 200, np.array([2.0])) == []  # one key is not enough
    frames = pairer.observe(KEYS[1], 200, np.array([-2.0]))
    assert summary(frames) == [(200, 2.0, 2.5)]
    assert float(frames[0].observation[KEYS[1]][0]) == -2.0
    assert pairer.waiting == 0


def test_in_order_commands_pair_at_once_and_resends_are_written_once():
    pairer = FramePairer(KEYS)
    frames = []
    for t in range(1, 4):
        frames += obs(pairer, t, float(t))
        frames += pairer.command(t, np.array([10.0 * t]))
        frames += pairer.command(t, np.array([10.0 * t]))  # re-sent
    assert summary(frames) == [(1, 1.0, 10.0), (2, 2.0, 20.0), (3, 3.0, 30.0)]


def test_commands_on_another_clock_take_the_newest_observation_before_them():
    pairer = FramePairer(KEYS)
    obs(pairer, 100, 1.0)
    assert pairer.command(150, np.array([7.0])) == []  # no observation has stamp 150
    frames = obs(pairer, 200, 2.0)  # the streams moved past 150: pair with the one at 100
    assert summary(frames) == [(150, 1.0, 7.0)]


def test_flush_pairs_what_waits_and_counts_commands_with_nothing_to_pair():
    pairer = FramePairer(KEYS)
    obs(pairer, 100, 1.0)
    pairer.command(300, np.array([3.0]))  # its observations never came
    assert pairer.waiting == 1
    assert summary(pairer.flush()) == [(300, 1.0, 3.0)]
    assert pairer.waiting == 0 and pairer.skipped == 0

    early = FramePairer(KEYS)
    early.command(50, np.array([1.0]))  # before any observation ...
    early.command(60, np.array([2.0]))
    obs(early, 100, 1.0)  # ... and the streams moved past both: nothing they answered
    assert early.waiting == 0 and early.skipped == 2

    empty = FramePairer(KEYS)
    empty.command(10, np.array([0.0]))
    assert empty.flush() == [] and empty.skipped == 1
    empty.observe(KEYS[0], 20, np.array([5.0]))
    empty.command(30, np.array([0.5]))  # one key was never observed
    assert empty.flush() == [] and empty.skipped == 2


def test_the_wait_is_bounded():
    pairer = FramePairer(KEYS, window=4)
    obs(pairer, 0, 0.0)
    frames = []
    for t in range(1, 8):  # commands whose observations never come
        frames += pairer.command(t, np.array([float(t)]))
    assert pairer.waiting == 4
    assert [f.stamp for f in frames] == [1, 2, 3]
