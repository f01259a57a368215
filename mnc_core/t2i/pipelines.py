"""Offline loading of a local diffusers pipeline directory, with clear errors.

Diffusers' own error for an incomplete directory usually mentions the hub or a
cache miss, which misleads when no hub is reachable by design. The directory is
therefore checked first (model_index.json, each component folder, its config
and weights), and only then handed to `DiffusionPipeline.from_pretrained` with
`local_files_only=True` and no remote code.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import DiffusionPipeline

log = logging.getLogger(__name__)

#: Libraries a component may come from; anything else would mean custom code.
#: A diffusers pipeline module (e.g. "kolors" for Kolors' ChatGLM text encoder and
#: tokenizer) is trusted too: diffusers resolves it to `diffusers.pipelines.<name>`.
_TRUSTED_LIBRARIES = ("diffusers", "transformers")
#: Component names that carry no weights (configs / vocabularies only).
_WEIGHTLESS_SUFFIXES = ("tokenizer", "scheduler", "feature_extractor", "image_processor")
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "spiece.model", "tokenizer.model")


class PipelineDirError(ValueError):
    """A pipeline directory is missing something needed to load it offline."""


@dataclass(frozen=True)
class PipelineIndex:
    """What model_index.json says: the pipeline class and its components."""

    class_name: str
    components: dict[str, tuple[str, str]]


def read_model_index(pipeline_dir: Path) -> PipelineIndex:
    """Parse `<pipeline_dir>/model_index.json`, naming the file on any problem."""
    index_path = Path(pipeline_dir) / "model_index.json"
    if not Path(pipeline_dir).is_dir():
        raise PipelineDirError(f"pipeline directory {pipeline_dir} does not exist")
    if not index_path.is_file():
        raise PipelineDirError(
            f"{index_path} is missing: {pipeline_dir} is not a diffusers pipeline"
        )
    try:
        raw = json.loads(index_path.read_text())
    except json.JSONDecodeError as exc:
        raise PipelineDirError(f"{index_path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or "_class_name" not in raw:
        raise PipelineDirError(f"{index_path} has no '_class_name'")
    components: dict[str, tuple[str, str]] = {}
    for name, value in raw.items():
        if name.startswith("_") or not isinstance(value, list):
            continue
        if len(value) != 2:
            raise PipelineDirError(f"{index_path}: component {name!r} is not [library, class]")
        if value[0] is None or value[1] is None:
            continue  # optional component left out (e.g. safety_checker)
        components[name] = (str(value[0]), str(value[1]))
    return PipelineIndex(class_name=str(raw["_class_name"]), components=components)


def check_pipeline_dir(pipeline_dir: Path) -> PipelineIndex:
    """Check every component of a pipeline directory is present; return its index."""
    pipeline_dir = Path(pipeline_dir)
    index = read_model_index(pipeline_dir)
    for name, (library, class_name) in index.components.items():
        if not _is_trusted_library(library):
            raise PipelineDirError(
                f"{pipeline_dir / 'model_index.json'}: component {name!r} comes from "
                f"{library!r}; only {_TRUSTED_LIBRARIES} and diffusers' own pipeline "
                "modules are loaded (no remote code)"
            )
        _check_component(pipeline_dir / name, name)
        _check_pipeline_module_files(pipeline_dir / name, library, class_name)
    return index


def _is_trusted_library(library: str) -> bool:
    """diffusers, transformers, or a module of the installed `diffusers.pipelines`."""
    if library in _TRUSTED_LIBRARIES:
        return True
    if not library.isidentifier():
        return False
    return importlib.util.find_spec(f"diffusers.pipelines.{library}") is not None


def _check_pipeline_module_files(folder: Path, library: str, class_name: str) -> None:
    """Files a diffusers pipeline-module class reads (ChatGLMTokenizer: tokenizer.model).

    Such tokenizers fail with a bare assertion when their file is missing; their
    `vocab_files_names` says which files they need.
    """
    if library in _TRUSTED_LIBRARIES:
        return
    module = importlib.import_module(f"diffusers.pipelines.{library}")
    needed = getattr(getattr(module, class_name, None), "vocab_files_names", None) or {}
    missing = [f for f in needed.values() if not (folder / f).is_file()]
    if missing:
        raise PipelineDirError(f"{folder} lacks {missing}, needed by {library}.{class_name}")


def _check_component(folder: Path, name: str) -> None:
    if not folder.is_dir():
        raise PipelineDirError(f"component folder {folder} is missing")
    if name.endswith("tokenizer") or "tokenizer" in name:
        if not any((folder / f).is_file() for f in _TOKENIZER_FILES):
            raise PipelineDirError(f"tokenizer folder {folder} has none of {_TOKENIZER_FILES}")
        return
    if name.endswith(_WEIGHTLESS_SUFFIXES):
        if not any(folder.glob("*config*.json")):
            raise PipelineDirError(f"component folder {folder} has no config JSON")
        return
    if not (folder / "config.json").is_file():
        raise PipelineDirError(f"{folder / 'config.json'} is missing")
    if not any(folder.glob("*.safetensors")):
        raise PipelineDirError(f"component folder {folder} has no .safetensors weights")


def load_pipeline(
    pipeline_dir: Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> DiffusionPipeline:
    """Load a checked local pipeline offline onto `device` in `dtype`."""
    check_pipeline_dir(pipeline_dir)
    pipe = DiffusionPipeline.from_pretrained(
        str(pipeline_dir),
        dtype=dtype,
        local_files_only=True,
        use_safetensors=True,
        trust_remote_code=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)
