"""Generic adapter steps, each alone: the data transform and the feature transform."""

from __future__ import annotations

import numpy as np
import pytest
from vlabench_plugins import adapters

from vlabench import api

TOP = "observation.images.top"
WRIST = "observation.images.wrist"
STATE = api.Feature(api.STATE_KEY, "state", (2,), space="pixel_xy_512", low=(0, 0), high=(512, 512))
FEATURES = (
    STATE,
    api.Feature(TOP, "image", (4, 6, 3), "uint8", "rgb"),
    api.Feature(WRIST, "image", (4, 4, 3), "uint8", "rgb"),
    api.Feature(api.TASK_KEY, "language", None, "str"),
)
POLICY_ACTION = api.Feature("action", "action", (2,), space="normalized", low=(-1, -1), high=(1, 1))


def _build(name: str, **params: object) -> api.Adapter:
    specs = {spec.name: spec for spec in adapters.vlabench_adapters()}
    return specs[name].build(params)


def _image(*shape: int) -> np.ndarray:
    return np.arange(np.prod(shape), dtype=np.int64).reshape(shape).astype(np.uint8)


def test_all_steps_are_offered() -> None:
    names = {spec.name for spec in adapters.vlabench_adapters()}
    assert names == {
        "rename_observation",
        "set_space",
        "rescale_action",
        "resize_image",
        "rotate_image",
        "flip_image",
    }


# rename_observation


def test_rename_observation() -> None:
    step = _build("rename_observation", map={TOP: "observation.images.image"})
    names = [f.name for f in step.observation_features(FEATURES)]
    assert names == [api.STATE_KEY, "observation.images.image", WRIST, api.TASK_KEY]
    renamed = step.observation_features(FEATURES)[1]
    assert renamed.shape == (4, 6, 3) and renamed.kind == "image"
    image = _image(2, 4, 6, 3)
    batch = {TOP: image, api.STATE_KEY: np.zeros((2, 2)), api.TASK_KEY: ["a", "b"]}
    out = step.observation(batch)
    assert set(out) == {"observation.images.image", api.STATE_KEY, api.TASK_KEY}
    assert out["observation.images.image"] is image
    assert TOP in batch  # the input batch is left alone
    assert step.action_feature(POLICY_ACTION) == POLICY_ACTION
    np.testing.assert_array_equal(step.action(np.ones((2, 2))), np.ones((2, 2)))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({}, "missing param"),
        ({"map": {}}, "non-empty"),
        ({"map": {TOP: ""}}, "non-empty strings"),
        ({"map": {TOP: "x", WRIST: "x"}}, "same name"),
        ({"map": {TOP: "x"}, "extra": 1}, "unknown param"),
    ],
)
def test_rename_observation_validates_params(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _build("rename_observation", **params)


def test_rename_observation_rejects_missing_and_clashing_keys() -> None:
    with pytest.raises(ValueError, match="has no"):
        _build("rename_observation", map={"observation.images.side": "x"}).observation_features(
            FEATURES
        )
    with pytest.raises(ValueError, match="existing"):
        _build("rename_observation", map={TOP: WRIST}).observation_features(FEATURES)
    with pytest.raises(ValueError, match="batch has no"):
        _build("rename_observation", map={TOP: "x"}).observation({WRIST: _image(1, 4, 4, 3)})


# set_space


def test_set_space_on_an_observation_feature() -> None:
    step = _build("set_space", feature=api.STATE_KEY, space="xy_pixels")
    out = step.observation_features(FEATURES)
    assert out[0] == api.Feature(
        api.STATE_KEY, "state", (2,), space="xy_pixels", low=(0, 0), high=(512, 512)
    )
    assert out[1:] == FEATURES[1:]
    assert step.action_feature(POLICY_ACTION) == POLICY_ACTION
    batch = {api.STATE_KEY: np.ones((3, 2))}
    assert step.observation(batch)[api.STATE_KEY] is batch[api.STATE_KEY]


def test_set_space_on_the_action() -> None:
    step = _build("set_space", feature="action", space="pixel_xy_512")
    assert step.action_feature(POLICY_ACTION).space == "pixel_xy_512"
    assert step.action_feature(POLICY_ACTION).low == POLICY_ACTION.low
    assert step.observation_features(FEATURES) == FEATURES
    actions = np.full((2, 2), 7.0, np.float32)
    np.testing.assert_array_equal(step.action(actions), actions)


def test_set_space_validates() -> None:
    with pytest.raises(ValueError, match="'space'"):
        _build("set_space", feature=api.STATE_KEY, space="")
    with pytest.raises(ValueError, match="has no"):
        _build(
            "set_space", feature="observation.environment_state", space="x"
        ).observation_features(FEATURES)


# rescale_action


def test_rescale_action_scalars() -> None:
    step = _build("rescale_action", **{"from": [-1, 1], "to": [0, 512], "space": "pixel_xy_512"})
    out = step.action(np.array([[-1, 1], [0, 0.5]], np.float32))
    np.testing.assert_allclose(out, [[0, 512], [256, 384]])
    assert out.dtype == np.float32
    chunk = step.action(np.zeros((2, 5, 2), np.float32))  # (B, H, A) chunks work too
    assert chunk.shape == (2, 5, 2) and np.all(chunk == 256)
    feature = step.action_feature(POLICY_ACTION)
    assert (feature.low, feature.high, feature.space) == ((0, 0), (512, 512), "pixel_xy_512")
    assert (feature.name, feature.shape, feature.dtype) == ("action", (2,), "float32")
    assert step.observation_features(FEATURES) == FEATURES


def test_rescale_action_per_entry_and_keeps_space_when_not_given() -> None:
    step = _build("rescale_action", **{"from": [[0, -1], [1, 1]], "to": [[10, 0], [20, 100]]})
    np.testing.assert_allclose(step.action(np.array([[0.5, 0.0]])), [[15, 50]])
    unbounded = api.Feature("action", "action", (2,), space="s")
    feature = step.action_feature(unbounded)
    assert (feature.low, feature.high, feature.space) == ((10, 0), (20, 100), "s")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"from": [-1, 1]}, "missing param"),
        ({"from": [1, 1], "to": [0, 1]}, "empty range"),
        ({"from": [-1], "to": [0, 1]}, r"\[low, high\]"),
        ({"from": ["a", 1], "to": [0, 1]}, "numbers"),
        ({"from": [-1, float("inf")], "to": [0, 1]}, "finite"),
        ({"from": [[0, 0], [1, 1]], "to": [[0, 0, 0], [1, 1, 1]]}, "different lengths"),
        ({"from": [-1, 1], "to": [0, 1], "space": 3}, "'space'"),
    ],
)
def test_rescale_action_validates_params(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _build("rescale_action", **params)


def test_rescale_action_checks_the_policy_action() -> None:
    step = _build("rescale_action", **{"from": [0, 1], "to": [0, 512]})
    with pytest.raises(ValueError, match="differs from the policy action bounds"):
        step.action_feature(POLICY_ACTION)  # the policy declares [-1, 1]
    three = _build("rescale_action", **{"from": [[0, 0, 0], [1, 1, 1]], "to": [0, 1]})
    with pytest.raises(ValueError, match="3 entries"):
        three.action_feature(POLICY_ACTION)
    with pytest.raises(ValueError, match="3 entries"):
        three.action(np.zeros((1, 2)))


# resize_image


def test_resize_image_area_downscale_averages_blocks() -> None:
    step = _build("resize_image", keys=["top"], size=[2, 3])
    image = _image(1, 4, 6, 3)
    out = step.observation({TOP: image, WRIST: _image(1, 4, 4, 3)})
    assert out[TOP].shape == (1, 2, 3, 3) and out[TOP].dtype == np.uint8
    expected = image.reshape(1, 2, 2, 3, 2, 3).astype(float).mean(axis=(2, 4))
    np.testing.assert_array_equal(out[TOP], np.rint(expected).astype(np.uint8))
    assert out[WRIST].shape == (1, 4, 4, 3)  # not selected
    shapes = {f.name: f.shape for f in step.observation_features(FEATURES)}
    assert shapes[TOP] == (2, 3, 3) and shapes[WRIST] == (4, 4, 3)


def test_resize_image_all_keys_with_a_time_axis_and_nearest() -> None:
    step = _build("resize_image", keys="all", size=[8, 8], method="nearest")
    image = _image(2, 3, 4, 4, 3)  # (B, T, H, W, C)
    out = step.observation({TOP: image, WRIST: image, api.STATE_KEY: np.zeros((2, 3, 2))})
    assert out[TOP].shape == (2, 3, 8, 8, 3) and out[WRIST].shape == (2, 3, 8, 8, 3)
    np.testing.assert_array_equal(out[TOP][..., ::2, ::2, :], image)  # each pixel doubled
    np.testing.assert_array_equal(out[TOP][..., 1::2, 1::2, :], image)
    shapes = {f.name: f.shape for f in step.observation_features(FEATURES)}
    assert shapes[TOP] == (8, 8, 3) and shapes[WRIST] == (8, 8, 3)
    assert shapes[api.STATE_KEY] == (2,)


def test_resize_image_area_upscale_keeps_a_constant_image_constant() -> None:
    step = _build("resize_image", keys="all", size=[7, 5])
    out = step.observation({TOP: np.full((1, 3, 3, 3), 200, np.uint8)})[TOP]
    assert out.shape == (1, 7, 5, 3) and np.all(out == 200)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"keys": "all"}, "missing param"),
        ({"keys": "all", "size": [0, 4]}, "'size'"),
        ({"keys": "all", "size": [4]}, "'size'"),
        ({"keys": [], "size": [4, 4]}, "'keys'"),
        ({"keys": "all", "size": [4, 4], "method": "cubic"}, "'method'"),
    ],
)
def test_resize_image_validates_params(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _build("resize_image", **params)


def test_image_steps_find_lerobots_single_camera_key() -> None:
    features = (api.Feature("observation.image", "image", (4, 4, 3), "uint8", "rgb"),)
    for keys in (["observation.image"], "all"):
        step = _build("resize_image", keys=keys, size=[2, 2])
        assert step.observation_features(features)[0].shape == (2, 2, 3)
        batch = {"observation.image": _image(1, 4, 4, 3), api.STATE_KEY: np.zeros((1, 2))}
        assert step.observation(batch)["observation.image"].shape == (1, 2, 2, 3)


def test_image_steps_reject_unknown_keys() -> None:
    step = _build("resize_image", keys=["side"], size=[2, 2])
    with pytest.raises(ValueError, match=r"no image \['observation.images.side'\]"):
        step.observation_features(FEATURES)
    with pytest.raises(ValueError, match="batch has no image"):
        step.observation({TOP: _image(1, 4, 4, 3)})
    with pytest.raises(ValueError, match="no image"):  # a state is not an image
        _build("flip_image", keys=[api.STATE_KEY], axis="vertical").observation_features(FEATURES)


# rotate_image


def test_rotate_image_180() -> None:
    step = _build("rotate_image", keys=[TOP], degrees=180)
    image = _image(2, 4, 6, 3)
    out = step.observation({TOP: image})[TOP]
    np.testing.assert_array_equal(out, image[:, ::-1, ::-1, :])
    assert out.flags["C_CONTIGUOUS"]
    assert step.observation_features(FEATURES) == FEATURES


def test_rotate_image_90_is_counter_clockwise_and_swaps_the_shape() -> None:
    step = _build("rotate_image", keys=[TOP], degrees=90)
    image = np.zeros((1, 4, 6, 3), np.uint8)
    image[0, 0, -1] = 255  # top-right corner
    out = step.observation({TOP: image})[TOP]
    assert out.shape == (1, 6, 4, 3)
    assert out[0, 0, 0, 0] == 255  # ... moves to the top-left
    assert step.observation_features(FEATURES)[1].shape == (6, 4, 3)
    back = _build("rotate_image", keys=[TOP], degrees=270).observation({TOP: out})[TOP]
    np.testing.assert_array_equal(back, image)


@pytest.mark.parametrize("degrees", [45, -90, 0, True, "180"])
def test_rotate_image_validates_degrees(degrees: object) -> None:
    with pytest.raises(ValueError, match="'degrees'"):
        _build("rotate_image", keys="all", degrees=degrees)


# flip_image


def test_flip_image() -> None:
    image = _image(2, 4, 6, 3)
    vertical = _build("flip_image", keys=["top"], axis="vertical")
    horizontal = _build("flip_image", keys=["top"], axis="horizontal")
    np.testing.assert_array_equal(vertical.observation({TOP: image})[TOP], image[:, ::-1])
    np.testing.assert_array_equal(horizontal.observation({TOP: image})[TOP], image[:, :, ::-1])
    assert vertical.observation_features(FEATURES) == FEATURES
    with pytest.raises(ValueError, match="'axis'"):
        _build("flip_image", keys="all", axis="diagonal")
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W, C\)"):
        vertical.observation({TOP: np.zeros((4, 4), np.uint8)})
