"""Feature spec: construction checks, JSON round trip, mismatch errors that name keys."""

import numpy as np
import pytest

from robot_learning.features import Feature, FeatureMismatchError, FeatureSpec


def make_spec() -> FeatureSpec:
    return FeatureSpec(
        {
            "observation.state": Feature("float32", (3,), ("x", "y", "z")),
            "observation.images.front": Feature(
                "video", (8, 8, 3), ("height", "width", "channels")
            ),
            "action": Feature(
                "float32", (2,), low=(-1, -1), high=(1, 1), control_mode="ee_delta_pos"
            ),
        }
    )


def test_json_round_trip_is_identical():
    spec = make_spec()
    again = FeatureSpec.from_json(spec.to_json())
    assert again == spec
    assert again.to_dict() == spec.to_dict()
    assert again.image_keys == ["observation.images.front"]
    assert again.observation_keys == ["observation.state", "observation.images.front"]
    assert again.action.low == (-1.0, -1.0)


def test_lerobot_style_names_dict_is_accepted():
    feat = Feature.from_dict({"dtype": "float32", "shape": [2], "names": {"motors": ["a", "b"]}})
    assert feat.names == ("a", "b")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dtype": "float16", "shape": (1,)}, "dtype"),
        ({"dtype": "float32", "shape": (2,), "low": (0, 0)}, "both"),
        ({"dtype": "float32", "shape": (2,), "low": (1, 0), "high": (0, 1)}, "low > high"),
        ({"dtype": "float32", "shape": (2,), "control_mode": "teleport"}, "control_mode"),
        ({"dtype": "video", "shape": (8, 8)}, "(H, W, C)"),
    ],
)
def test_invalid_features_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Feature(**kwargs)


def test_mismatch_names_every_differing_key():
    spec = make_spec()
    other = dict(spec)
    other.pop("observation.images.front")
    other["observation.state"] = Feature("float32", (4,))
    other["observation.environment_state"] = Feature("float32", (2,))
    with pytest.raises(FeatureMismatchError) as err:
        spec.check_matches(other, what="dataset")
    text = str(err.value)
    assert "observation.images.front" in text
    assert "observation.environment_state" in text
    assert "'observation.state'" in text and "(3,) != (4,)" in text
    assert "action" not in text.split("missing")[0]


def test_video_and_image_dtypes_are_interchangeable():
    a = FeatureSpec({"observation.images.c": Feature("video", (4, 4, 3))})
    b = FeatureSpec({"observation.images.c": Feature("image", (4, 4, 3))})
    assert a.diff(b) == []


def test_check_sample_shapes_and_image_dtype():
    spec = make_spec()
    good = {
        "observation.state": np.zeros(3, np.float32),
        "observation.images.front": np.zeros((8, 8, 3), np.uint8),
        "action": np.zeros(2, np.float32),
    }
    spec.check_sample(good)
    with pytest.raises(FeatureMismatchError, match="observation.state"):
        spec.check_sample({**good, "observation.state": np.zeros(4)})
    with pytest.raises(FeatureMismatchError, match="uint8"):
        spec.check_sample({**good, "observation.images.front": np.zeros((8, 8, 3), np.float32)})
    with pytest.raises(FeatureMismatchError, match="action"):
        spec.check_sample({k: v for k, v in good.items() if k != "action"})


def test_select_and_merge():
    spec = make_spec()
    assert list(spec.select(["action"])) == ["action"]
    with pytest.raises(FeatureMismatchError, match="nope"):
        spec.select(["nope"])
    merged = spec.merge({"next.reward": Feature("float32", (1,))})
    assert "next.reward" in merged and len(merged) == 4
    with pytest.raises(FeatureMismatchError, match="action"):
        spec.merge({"action": Feature("float32", (3,))})
