"""Tiny random-weight pipelines of every model family, built offline from configs.

Tests and the demo cannot download weights, so each family's pipeline is built
here with the same diffusers/transformers classes as the real one, only with
very small block sizes, and with tokenizers built in code from a tiny
character vocabulary. Kolors' `ChatGLMTokenizer` reads a SentencePiece model
file, so a tiny one is trained here (`sentencepiece.SentencePieceTrainer`) on
generated caption lines. The pipeline is saved with `save_pretrained`
(safetensors) so that everything downstream goes through the real loading path
(`mnc_core.t2i.pipelines.load_pipeline`).
"""

from __future__ import annotations

import io
import logging
import random
import string
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import (
    AutoencoderDC,
    AutoencoderKL,
    DDIMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    KolorsPipeline,
    PixArtSigmaPipeline,
    PixArtTransformer2DModel,
    SanaPipeline,
    SanaTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from diffusers.pipelines.kolors import ChatGLMModel, ChatGLMTokenizer
from diffusers.pipelines.kolors.text_encoder import ChatGLMConfig, RMSNorm
from sentencepiece import SentencePieceTrainer
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    Gemma2Config,
    Gemma2Model,
    GemmaTokenizer,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
)

from mnc_core.t2i.pipelines import load_pipeline
from mnc_core.t2i.zoo import CATALOG_DIR

log = logging.getLogger(__name__)

#: Families a tiny pipeline can be built for (the order is the build priority).
TINY_FAMILIES = ("sd15", "sdxl", "sd3", "flux", "sana", "pixart", "sd2-v", "kolors")
#: Image side length the tiny pipelines are meant for (VAE downsamples by 2).
TINY_RESOLUTION = 32

_CHARS = string.ascii_lowercase + string.digits + ".,'-!?"
_TEXT_MAX_LENGTH = 77
#: Caption words the tiny SentencePiece model learns as whole pieces.
_CAPTION_WORDS = (
    "a", "an", "the", "of", "on", "in", "with", "and", "from", "to", "photo", "image",
    "small", "large", "red", "green", "blue", "yellow", "white", "black", "orange", "purple",
    "circle", "square", "triangle", "star", "stripes", "dots", "smooth", "gradient", "linear",
    "radial", "sky", "ground", "sunset", "night", "day",
)  # fmt: skip
#: Characters the tiny SentencePiece model covers (ChatGLM keeps case, unlike CLIP).
_SENTENCEPIECE_CHARS = _CHARS + string.ascii_uppercase
#: Sequence length of the tiny ChatGLM (KolorsPipeline accepts at most 256 tokens).
_CHATGLM_SEQ_LENGTH = 256


def char_clip_tokenizer(max_length: int = _TEXT_MAX_LENGTH) -> CLIPTokenizer:
    """CLIP BPE tokenizer over single characters (no merges), built in code.

    Also used by the benchmark for full-size random text encoders (ids stay < 80).
    """
    tokens = ["<|startoftext|>", "<|endoftext|>"]
    tokens += list(_CHARS) + [c + "</w>" for c in _CHARS]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def _t5_tokenizer() -> T5Tokenizer:
    """T5 unigram tokenizer over single characters and word starts."""
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(c, -3.0) for c in _CHARS] + [("▁" + c, -2.5) for c in _CHARS]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=_TEXT_MAX_LENGTH)


def _gemma_tokenizer() -> GemmaTokenizer:
    """Gemma BPE tokenizer over single characters (byte fallback to <unk>)."""
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "▁"] + list(_CHARS)
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return GemmaTokenizer(vocab=vocab, merges=[], model_max_length=_TEXT_MAX_LENGTH)


def _sentencepiece_corpus(n_lines: int = 400, seed: int = 0) -> list[str]:
    """Caption-like lines: known words mixed with random character strings.

    The random strings make every character of `_SENTENCEPIECE_CHARS` a piece of
    its own, so any caption made of them tokenizes without <unk>; the known words
    become whole pieces.
    """
    rng = random.Random(seed)

    def word() -> str:
        if rng.random() < 0.6:
            return rng.choice(_CAPTION_WORDS)
        return "".join(rng.choice(_SENTENCEPIECE_CHARS) for _ in range(rng.randint(1, 6)))

    return [" ".join(word() for _ in range(rng.randint(3, 9))) for _ in range(n_lines)]


def _chatglm_tokenizer(folder: Path, vocab_size: int = 160) -> ChatGLMTokenizer:
    """diffusers' ChatGLMTokenizer on a tiny unigram SentencePiece model trained in code.

    ChatGLM's ids: <unk> 0 (also its padding id), <s> 1, </s> 2. The model is
    written as `folder/tokenizer.model`, the pipeline's tokenizer folder: the
    tokenizer reads it when built and again when saved (`save_vocabulary`).
    """
    model = io.BytesIO()
    SentencePieceTrainer.train(
        sentence_iterator=iter(_sentencepiece_corpus()), model_writer=model,
        vocab_size=vocab_size, hard_vocab_limit=False, model_type="unigram",
        character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=1, minloglevel=2,
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    model_file = folder / ChatGLMTokenizer.vocab_files_names["vocab_file"]
    model_file.write_bytes(model.getvalue())
    return ChatGLMTokenizer(str(model_file))


def _chatglm_encoder(vocab_size: int, hidden: int) -> ChatGLMModel:
    """A tiny ChatGLM3 (multi-query attention, RMSNorm, rotary embeddings) with random weights.

    `empty_init=False` initialises the linear layers; RMSNorm weights are created
    with `torch.empty` even then, so they are set to one (an untrained norm).
    """
    config = ChatGLMConfig(
        num_layers=2, padded_vocab_size=vocab_size, hidden_size=hidden, ffn_hidden_size=37,
        kv_channels=8, num_attention_heads=4, seq_length=_CHATGLM_SEQ_LENGTH,
        multi_query_attention=True, multi_query_group_num=2, add_qkv_bias=True,
        original_rope=True, pad_token_id=0, eos_token_id=2,
    )  # fmt: skip
    encoder = ChatGLMModel(config, empty_init=False)
    for module in encoder.modules():
        if isinstance(module, RMSNorm):
            torch.nn.init.ones_(module.weight)
    return encoder


def _clip_text_config(vocab_size: int, hidden: int = 32, projection: int = 32) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=_TEXT_MAX_LENGTH,
        projection_dim=projection,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )


def _t5_encoder(vocab_size: int, d_model: int) -> T5EncoderModel:
    config = T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    return T5EncoderModel(config)


def _vae(latent_channels: int = 4, **extra) -> AutoencoderKL:
    """Two-block KL VAE: 32 px images -> 16 px latents."""
    return AutoencoderKL(
        block_out_channels=(8, 8),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=latent_channels,
        norm_num_groups=2,
        sample_size=TINY_RESOLUTION,
        **extra,
    )


def _sd_unet(cross_attention_dim: int, **extra) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=TINY_RESOLUTION // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=4,
        norm_num_groups=4,
        **extra,
    )


def _build_sd(prediction_type: str) -> DiffusionPipeline:
    tokenizer = char_clip_tokenizer()
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )
    extra = {"use_linear_projection": True} if prediction_type == "v_prediction" else {}
    return StableDiffusionPipeline(
        vae=_vae(),
        text_encoder=CLIPTextModel(_clip_text_config(len(tokenizer))),
        tokenizer=tokenizer,
        unet=_sd_unet(32, **extra),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


# Builders take the output folder for files a component reads from disk while
# it exists (Kolors' SentencePiece model); the others do not need it.


def _build_sd15(out_dir: Path) -> DiffusionPipeline:
    return _build_sd("epsilon")


def _build_sd2_v(out_dir: Path) -> DiffusionPipeline:
    return _build_sd("v_prediction")


def _build_sdxl(out_dir: Path) -> DiffusionPipeline:
    tokenizer = char_clip_tokenizer()
    time_embed_dim = 8
    pooled_dim = 32
    unet = _sd_unet(
        64,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        projection_class_embeddings_input_dim=pooled_dim + 6 * time_embed_dim,
    )
    return StableDiffusionXLPipeline(
        vae=_vae(),
        text_encoder=CLIPTextModel(_clip_text_config(len(tokenizer))),
        text_encoder_2=CLIPTextModelWithProjection(
            _clip_text_config(len(tokenizer), projection=pooled_dim)
        ),
        tokenizer=tokenizer,
        tokenizer_2=char_clip_tokenizer(),
        unet=unet,
        scheduler=EulerDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
        ),
        force_zeros_for_empty_prompt=True,
    )


def _build_kolors(out_dir: Path) -> DiffusionPipeline:
    """Kolors: an SDXL-type UNet whose text input is ChatGLM's hidden states.

    As in Kolors' UNet config, `encoder_hid_proj` ("text_proj") maps the ChatGLM
    width to the cross-attention width, and the "text_time" added embedding takes
    ChatGLM's pooled state plus the six SDXL size/crop ids. The scheduler is
    Kolors' own config from the catalog (Euler, 1100 steps, epsilon).
    """
    tokenizer = _chatglm_tokenizer(out_dir / "tokenizer")
    hidden, time_embed_dim = 32, 8
    unet = _sd_unet(
        64,
        use_linear_projection=True,
        encoder_hid_dim=hidden,
        encoder_hid_dim_type="text_proj",
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        projection_class_embeddings_input_dim=hidden + 6 * time_embed_dim,
    )
    scheduler_config = EulerDiscreteScheduler.load_config(CATALOG_DIR / "kolors" / "scheduler")
    return KolorsPipeline(
        vae=_vae(),
        text_encoder=_chatglm_encoder(tokenizer.vocab_size, hidden),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler.from_config(scheduler_config),
        force_zeros_for_empty_prompt=True,
    )


def _build_sd3(out_dir: Path) -> DiffusionPipeline:
    clip_tok = char_clip_tokenizer()
    t5_tok = _t5_tokenizer()
    transformer = SD3Transformer2DModel(
        sample_size=TINY_RESOLUTION // 2,
        patch_size=2,
        in_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=64,
        pooled_projection_dim=64,
        out_channels=4,
        pos_embed_max_size=TINY_RESOLUTION,
    )
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(shift_factor=0.0609, scaling_factor=1.5035),
        text_encoder=CLIPTextModelWithProjection(_clip_text_config(len(clip_tok))),
        tokenizer=clip_tok,
        text_encoder_2=CLIPTextModelWithProjection(_clip_text_config(len(clip_tok))),
        tokenizer_2=char_clip_tokenizer(),
        text_encoder_3=_t5_encoder(len(t5_tok), d_model=64),
        tokenizer_3=t5_tok,
    )


def _build_flux(out_dir: Path) -> DiffusionPipeline:
    clip_tok = char_clip_tokenizer()
    t5_tok = _t5_tokenizer()
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=(4, 4, 8),
    )
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(latent_channels=4, shift_factor=0.1159, scaling_factor=0.3611),
        text_encoder=CLIPTextModel(_clip_text_config(len(clip_tok))),
        tokenizer=clip_tok,
        text_encoder_2=_t5_encoder(len(t5_tok), d_model=32),
        tokenizer_2=t5_tok,
        transformer=transformer,
    )


def _build_sana(out_dir: Path) -> DiffusionPipeline:
    tokenizer = _gemma_tokenizer()
    text_encoder = Gemma2Model(
        Gemma2Config(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
            max_position_embeddings=64,
            pad_token_id=0,
            eos_token_id=1,
            bos_token_id=2,
        )
    )
    transformer = SanaTransformer2DModel(
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=1,
        num_attention_heads=2,
        attention_head_dim=4,
        num_cross_attention_heads=2,
        cross_attention_head_dim=4,
        cross_attention_dim=8,
        caption_channels=16,
        sample_size=TINY_RESOLUTION // 2,
    )
    vae = AutoencoderDC(
        in_channels=3,
        latent_channels=4,
        attention_head_dim=2,
        encoder_block_types=("ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "EfficientViTBlock"),
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        encoder_qkv_multiscales=((), (5,)),
        decoder_qkv_multiscales=((), (5,)),
        encoder_layers_per_block=(1, 1),
        decoder_layers_per_block=(1, 1),
        downsample_block_type="conv",
        upsample_block_type="interpolate",
        decoder_norm_types="rms_norm",
        decoder_act_fns="silu",
        scaling_factor=0.41407,
    )
    return SanaPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=DPMSolverMultistepScheduler(
            algorithm_type="dpmsolver++",
            prediction_type="flow_prediction",
            use_flow_sigmas=True,
            flow_shift=3.0,
        ),
    )


def _build_pixart(out_dir: Path) -> DiffusionPipeline:
    tokenizer = _t5_tokenizer()
    transformer = PixArtTransformer2DModel(
        sample_size=TINY_RESOLUTION // 2,
        num_layers=1,
        patch_size=2,
        attention_head_dim=8,
        num_attention_heads=3,
        caption_channels=32,
        in_channels=4,
        cross_attention_dim=24,
        out_channels=8,
        attention_bias=True,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
    )
    return PixArtSigmaPipeline(
        tokenizer=tokenizer,
        text_encoder=_t5_encoder(len(tokenizer), d_model=32),
        vae=_vae(),
        transformer=transformer,
        scheduler=DPMSolverMultistepScheduler(),
    )


_BUILDERS: dict[str, Callable[[Path], DiffusionPipeline]] = {
    "sd15": _build_sd15,
    "sd2-v": _build_sd2_v,
    "sdxl": _build_sdxl,
    "sd3": _build_sd3,
    "flux": _build_flux,
    "sana": _build_sana,
    "pixart": _build_pixart,
    "kolors": _build_kolors,
}


def build_tiny_pipeline(family: str, out_dir: Path, seed: int = 0) -> Path:
    """Build a tiny random-weight pipeline of `family`, save it to `out_dir`, reload it.

    The reload through `load_pipeline` proves the directory is complete; the
    saved directory is returned.
    """
    if family not in _BUILDERS:
        raise ValueError(f"unknown family {family!r}; expected one of {TINY_FAMILIES}")
    torch.manual_seed(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pipe = _BUILDERS[family](out_dir)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    load_pipeline(out_dir, device="cpu", dtype=torch.float32)
    log.info("built tiny %s pipeline in %s", family, out_dir)
    return out_dir
