"""Read a diffusers pipeline directory's configs (no weights) into a `ZooModel`.

A model of the zoo is a local diffusers pipeline directory: `model_index.json`
names the components, and each component folder holds its config. Features,
parameter counts and FLOPs are all computed from these configs, so this module
is the one place that knows which file holds which component's config and
fails with a message naming the missing file and component.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnc_core.ids import check_slug

MODEL_INDEX = "model_index.json"
DENOISER_NAMES = ("unet", "transformer")
SCHEDULER_NAME = "scheduler"
VAE_NAME = "vae"
TEXT_ENCODER_PREFIX = "text_encoder"
# Components whose config file we need, and the file name diffusers saves it under.
SCHEDULER_CONFIG_FILE = "scheduler_config.json"
MODEL_CONFIG_FILE = "config.json"


class ZooConfigError(ValueError):
    """A pipeline directory is missing a file or holds an unreadable config."""


@dataclass(frozen=True)
class ComponentConfig:
    """One pipeline component: its model_index entry and its parsed config."""

    name: str
    library: str
    class_name: str
    config: dict[str, Any]
    path: Path


@dataclass(frozen=True)
class ZooModel:
    """The configs of one pipeline directory.

    `components` holds only the components whose config matters for features
    (denoiser, VAE, text encoders, scheduler), in model_index order;
    `other_components` lists the rest (tokenizers, safety checker, ...) by name.
    """

    model_id: str
    path: Path
    pipeline_class: str
    model_index: dict[str, Any]
    components: dict[str, ComponentConfig]
    other_components: tuple[str, ...] = field(default=())

    @property
    def denoiser(self) -> ComponentConfig:
        """The UNet or transformer (every valid ZooModel has exactly one)."""
        for name in DENOISER_NAMES:
            if name in self.components:
                return self.components[name]
        raise ZooConfigError(f"{self.path / MODEL_INDEX}: no denoiser (unet or transformer)")

    @property
    def vae(self) -> ComponentConfig:
        return self.components[VAE_NAME]

    @property
    def scheduler(self) -> ComponentConfig:
        return self.components[SCHEDULER_NAME]

    @property
    def text_encoders(self) -> list[ComponentConfig]:
        """Text encoders in name order (`text_encoder`, `text_encoder_2`, ...)."""
        names = sorted(n for n in self.components if n.startswith(TEXT_ENCODER_PREFIX))
        return [self.components[n] for n in names]


def is_config_component(name: str) -> bool:
    """True for the components whose config feeds the model features."""
    return (
        name in DENOISER_NAMES
        or name in (VAE_NAME, SCHEDULER_NAME)
        or name.startswith(TEXT_ENCODER_PREFIX)
    )


def component_config_path(model_dir: Path, name: str) -> Path:
    """Where diffusers stores the config of component `name` (one rule for all readers)."""
    file_name = SCHEDULER_CONFIG_FILE if name == SCHEDULER_NAME else MODEL_CONFIG_FILE
    return Path(model_dir) / name / file_name


def read_json(path: Path, what: str) -> dict[str, Any]:
    """Parse a JSON object file; errors name the file and what it should hold."""
    if not path.is_file():
        raise ZooConfigError(f"{path}: missing ({what})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_json_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ZooConfigError(f"{path}: not valid JSON ({what}): {err}") from err
    if not isinstance(data, dict):
        raise ZooConfigError(f"{path}: expected a JSON object ({what}), got {type(data).__name__}")
    return data


def _json_constant(name: str) -> float:
    """Accept the non-standard constants diffusers writes (e.g. `-Infinity`)."""
    return {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}[name]


def load_zoo_configs(model_dir: Path, model_id: str | None = None) -> ZooModel:
    """Parse `model_index.json` and the config of every feature-relevant component.

    The model id defaults to the directory name and must be a slug. A missing
    model_index, a listed component without its config file, or a pipeline
    without denoiser / VAE / scheduler raises `ZooConfigError` naming the file
    and component.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ZooConfigError(f"{model_dir}: not a directory (expected a diffusers pipeline)")
    model_id = check_slug(model_id or model_dir.name, f"model id of {model_dir}")
    index = read_json(model_dir / MODEL_INDEX, "pipeline model index")
    pipeline_class = index.get("_class_name")
    if not isinstance(pipeline_class, str):
        raise ZooConfigError(f"{model_dir / MODEL_INDEX}: no '_class_name' (pipeline class)")

    components: dict[str, ComponentConfig] = {}
    others: list[str] = []
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list):
            continue  # metadata or a pipeline option such as force_zeros_for_empty_prompt
        if len(entry) != 2 or entry[1] is None:
            continue  # optional component left empty, e.g. [null, null]
        if not is_config_component(name):
            others.append(name)
            continue
        path = component_config_path(model_dir, name)
        config = read_json(path, f"config of component '{name}' ({entry[1]})")
        components[name] = ComponentConfig(name, str(entry[0]), str(entry[1]), config, path)

    _require_core_components(model_dir, components)
    return ZooModel(model_id, model_dir, pipeline_class, index, components, tuple(others))


def _require_core_components(model_dir: Path, components: dict[str, ComponentConfig]) -> None:
    """A pipeline needs a denoiser, a VAE and a scheduler to be a zoo model."""
    index_path = model_dir / MODEL_INDEX
    if not any(name in components for name in DENOISER_NAMES):
        raise ZooConfigError(f"{index_path}: lists no denoiser component ('unet' or 'transformer')")
    for name in (VAE_NAME, SCHEDULER_NAME):
        if name not in components:
            raise ZooConfigError(f"{index_path}: lists no '{name}' component")
