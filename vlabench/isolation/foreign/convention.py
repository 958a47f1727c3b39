"""How a served model's keys map to vlabench features: a *convention*, declared by a preset.

A convention names, for one server, which vlabench feature goes under which key (cameras,
state or slices of it, the prompt), the image size it wants (resized with padding, as
openpi's ``image_tools.resize_with_pad``), the chunk it returns and how much of it to execute,
and what its actions mean (a space tag, so ``vlabench check`` refuses a meaningless pair).
The same object maps both ways: a client builds the server's observation from a vlabench
batch row; a server adapter builds a vlabench observation from a client's message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from vlabench import api

_SLICE = re.compile(r"^(?P<name>[^\[\]]+)(\[(?P<lo>\d*):(?P<hi>\d*)\])?$")


@dataclass(frozen=True)
class Convention:
    """One server's keys and meanings (see the module docstring); every field is optional."""

    images: dict[str, str] = field(default_factory=dict)
    """Server key -> vlabench camera feature (``observation.images.<camera>``)."""
    images_under: str | None = None
    """Nest the images in a sub-map under this key (vla-eval: ``images``)."""
    state: dict[str, str] = field(default_factory=dict)
    """Server key -> ``observation.state`` or a slice of it (``observation.state[0:7]``)."""
    prompt: str | None = None
    """Server key of the task instruction."""
    image_size: int | None = None
    """Square side the server wants; images are resized with zero padding (aspect kept)."""
    action_key: str = "actions"
    chunk_size: int = 1
    """Actions per server answer (``(H, A)``); 1: one action ``(A,)`` per observation."""
    n_action_steps: int = 1
    """Actions of each chunk executed before the server is asked again."""
    action_space: str = ""
    action_dim: int | None = None
    state_space: str = ""

    @classmethod
    def from_options(cls, options: Mapping[str, Any], where: str) -> Convention:
        """From a preset's options (``url``/``token_env`` and unknown keys are not its own)."""
        names = set(cls.__dataclass_fields__)
        unknown = set(options) - names - {"url", "token_env", "convention", "served"}
        if unknown:
            raise api.RegistryError(
                f"{where}: unknown option(s) {sorted(unknown)}; a served model's preset takes "
                f"url, token_env, convention and {', '.join(sorted(names))}"
            )
        base = BUILT_IN.get(str(options.get("convention") or ""), cls())
        if options.get("convention") and options["convention"] not in BUILT_IN:
            raise api.RegistryError(
                f"{where}: unknown convention {options['convention']!r} "
                f"(built in: {', '.join(sorted(BUILT_IN))})"
            )
        given = {k: v for k, v in options.items() if k in names}
        try:
            conv = replace(base, **given)
        except TypeError as exc:
            raise api.RegistryError(f"{where}: {exc}") from None
        if conv.n_action_steps > max(1, conv.chunk_size):
            raise api.RegistryError(
                f"{where}: n_action_steps {conv.n_action_steps} exceeds chunk_size "
                f"{conv.chunk_size}"
            )
        for spec in conv.state.values():
            if not _SLICE.match(spec):
                raise api.RegistryError(f"{where}: bad state source {spec!r} (want NAME[lo:hi])")
        return conv

    def as_options(self) -> dict[str, Any]:
        """Plain data (what a preset would spell out; sent in a server's metadata)."""
        return asdict(self)

    @property
    def declared(self) -> bool:
        """Whether it maps anything (an empty one means: send every feature by its name)."""
        return bool(self.images or self.state or self.prompt)

    def for_env(self, env: api.EnvInterface,
                reads: tuple[api.Feature, ...] | None = None) -> Convention:
        """An empty convention becomes the identity: every feature under its own name, of
        ``reads`` (what a served policy reads) or else of everything ``env`` offers."""
        if self.declared:
            return self
        features = env.observation if reads is None else reads
        images = {f.name: f.name for f in features if f.is_image}
        state = {f.name: f.name for f in features if f.kind == "state"}
        has_task = any(f.kind == "language" for f in features)
        return replace(self, images=images, state=state,
                       prompt=api.TASK_KEY if has_task else None)

    # -- interface ------------------------------------------------------------------------
    def inputs(self, env: api.EnvInterface) -> tuple[api.Feature, ...]:
        """The env features read (a camera or state the env lacks is named by the check)."""
        out: list[api.Feature] = []
        for name in dict.fromkeys(self.images.values()):
            have = env.feature(name)
            out.append(api.Feature(name, "image", None, "uint8", have.space if have else ""))
        for name in dict.fromkeys(_source(s)[0] for s in self.state.values()):
            have = env.feature(name)
            shape = have.shape if have is not None else None
            out.append(api.Feature(name, "state", shape, "float32", self.state_space))
        if self.prompt:
            out.append(api.Feature(api.TASK_KEY, "language", None, "str"))
        return tuple(out)

    def action(self, env: api.EnvInterface) -> api.Feature:
        """The action feature: the env's, with this convention's dimension and space."""
        shape = (self.action_dim,) if self.action_dim else env.action.shape
        return replace(env.action, shape=shape, space=self.action_space or env.action.space,
                       low=None if self.action_dim else env.action.low,
                       high=None if self.action_dim else env.action.high)

    def interface(self, env: api.EnvInterface) -> api.PolicyInterface:
        """What a policy behind this convention reads and writes on ``env``."""
        chunk = max(1, self.chunk_size)
        return api.PolicyInterface(self.inputs(env), self.action(env), chunk_size=chunk,
                                   n_action_steps=min(max(1, self.n_action_steps), chunk))

    # -- both directions ------------------------------------------------------------------
    def to_server(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The server's observation from one (unbatched) vlabench observation."""
        obs: dict[str, Any] = {}
        images = {key: self._image(np.asarray(row[name])) for key, name in self.images.items()}
        if self.images_under:
            obs[self.images_under] = images
        else:
            obs.update(images)
        for key, spec in self.state.items():
            name, lo, hi = _source(spec)
            value = row[name]
            if isinstance(value, str | np.str_):
                obs[key] = str(value)  # a name (e.g. metaworld's task_name)
            else:
                obs[key] = np.asarray(value)[lo:hi] if lo is not None or hi is not None else (
                    np.asarray(value))
        if self.prompt:
            obs[self.prompt] = str(row.get(api.TASK_KEY, ""))
        return obs

    def from_client(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        """A vlabench observation from a client's message (what the served policy reads)."""
        images = obs.get(self.images_under, {}) if self.images_under else obs
        row: dict[str, Any] = {}
        for key, name in self.images.items():
            if key not in images:
                raise ValueError(f"observation lacks image {key!r} (has {sorted(images)})")
            row[name] = np.asarray(images[key])
        parts: dict[str, list[tuple[int, np.ndarray]]] = {}
        for key, spec in self.state.items():
            if key not in obs:
                raise ValueError(f"observation lacks state {key!r} (has {sorted(obs)})")
            name, lo, hi = _source(spec)
            if lo is None and hi is None:
                value = obs[key]
                row[name] = str(value) if isinstance(value, str) else np.asarray(value)
                continue
            parts.setdefault(name, []).append((lo or 0, np.asarray(obs[key], np.float32).ravel()))
        for name, pieces in parts.items():
            row[name] = np.concatenate([p for _, p in sorted(pieces, key=lambda x: x[0])])
        if self.prompt:
            row[api.TASK_KEY] = str(obs.get(self.prompt, ""))
        return row

    def _image(self, image: np.ndarray) -> np.ndarray:
        if self.image_size and image.shape[:2] != (self.image_size, self.image_size):
            return resize_with_pad(image, self.image_size, self.image_size)
        return np.ascontiguousarray(image)


def _source(spec: str) -> tuple[str, int | None, int | None]:
    match = _SLICE.match(spec)
    assert match is not None
    lo, hi = match.group("lo"), match.group("hi")
    return match.group("name"), int(lo) if lo else None, int(hi) if hi else None


def resize_with_pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an ``H x W x C`` uint8 image to fit, keep its aspect, pad with zeros (centred).

    The same arithmetic as openpi's ``image_tools.resize_with_pad`` (PIL bilinear)."""
    from PIL import Image

    pil = Image.fromarray(np.ascontiguousarray(image))
    cur_w, cur_h = pil.size
    ratio = max(cur_w / width, cur_h / height)
    new_h, new_w = int(cur_h / ratio), int(cur_w / ratio)
    resized = pil.resize((new_w, new_h), resample=Image.BILINEAR)
    canvas = Image.new(resized.mode, (width, height), 0)
    canvas.paste(resized, (max(0, int((width - new_w) / 2)), max(0, int((height - new_h) / 2))))
    return np.asarray(canvas)


BUILT_IN: dict[str, Convention] = {
    "openpi_libero": Convention(
        images={"observation/image": "observation.images.image",
                "observation/wrist_image": "observation.images.image2"},
        state={"observation/state": "observation.state"},
        prompt="prompt", image_size=224, chunk_size=10, n_action_steps=5,
        action_space="libero_ee_delta", state_space="libero_eef_pos_axisangle_gripper",
    ),
    "openpi_droid": Convention(
        images={"observation/exterior_image_1_left": "observation.images.exterior_image_1_left",
                "observation/wrist_image_left": "observation.images.wrist_image_left"},
        state={"observation/joint_position": "observation.state[0:7]",
               "observation/gripper_position": "observation.state[7:8]"},
        prompt="prompt", image_size=224, chunk_size=10, n_action_steps=8,
        action_space="droid_joint_velocity_gripper_position", action_dim=8,
        state_space="droid_joint_pos_gripper",
    ),
    "vlaeval_libero": Convention(
        images={"agentview": "observation.images.image", "wrist": "observation.images.image2"},
        images_under="images", state={"states": "observation.state"},
        prompt="task_description", action_space="libero_ee_delta",
        state_space="libero_eef_pos_axisangle_gripper",
    ),
}
"""Ready conventions: openpi's LIBERO and DROID examples, vla-eval's LIBERO benchmark."""
