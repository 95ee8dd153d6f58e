"""Tiny random-weight pipelines, built in code: the real diffusers pipeline classes with every
component shrunk to a few kilobytes, as diffusers tests its own pipelines.

They run the engine's whole code path on a CPU without downloading anything (tokenizers are
built with ``tokenizers``, text and image encoders from tiny configs), so tests and
``benchmarks/gpu_smoke.py`` can prove the plumbing: frame counts, sizes, which images reach the
model, cancellation per step, loading from disk. Their output is noise. ``save(kind, dir)``
writes one in diffusers' format, to be loaded exactly as an operator's real weights are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

KINDS = ("wan-i2v", "wan-flf2v", "wan-vace")


def save(kind: str, directory: Path) -> Path:
    """Build the tiny pipeline ``kind`` and save it to ``directory`` (returned)."""
    builders = {
        "wan-i2v": lambda: wan_i2v(last_frame=False),
        "wan-flf2v": lambda: wan_i2v(last_frame=True),
        "wan-vace": wan_vace,
    }
    builders[kind]().save_pretrained(str(directory))
    return directory


def _text_side() -> dict[str, Any]:
    """A character-level tokenizer and a tiny UMT5 encoder (the text side of Wan)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    vocab.update({chr(c): i + 3 for i, c in enumerate(range(32, 127))})
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    config = UMT5Config(
        vocab_size=len(vocab),
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
    )
    return {
        "tokenizer": PreTrainedTokenizerFast(
            tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
        ),
        "text_encoder": UMT5EncoderModel(config).eval(),
    }


def _wan_vae() -> Any:
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )


def _scheduler() -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(shift=7.0)


def wan_i2v(*, last_frame: bool) -> Any:
    """``WanImageToVideoPipeline``: from a first frame (the I2V layout), or from a first and a
    last frame (the FLF2V layout, whose image embedding has room for both)."""
    import torch
    from diffusers import WanImageToVideoPipeline, WanTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=36,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        image_dim=4,
        # Two images (first and last) of 4×4 patches plus a class token each.
        pos_embed_seq_len=2 * (4 * 4 + 1) if last_frame else None,
    )
    image_encoder = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=4,
            projection_dim=4,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=4,
            intermediate_size=16,
            patch_size=1,
        )
    )
    return WanImageToVideoPipeline(
        **_text_side(),
        vae=_wan_vae(),
        transformer=transformer,
        scheduler=_scheduler(),
        image_encoder=image_encoder,
        image_processor=CLIPImageProcessor(crop_size=4, size=4),
    )


def wan_vace() -> Any:
    """``WanVACEPipeline``: a video, a mask and reference images."""
    import torch
    from diffusers import WanVACEPipeline, WanVACETransformer3DModel

    torch.manual_seed(0)
    transformer = WanVACETransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=3,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        vace_layers=[0, 2],
        vace_in_channels=96,
    )
    return WanVACEPipeline(
        **_text_side(), vae=_wan_vae(), transformer=transformer, scheduler=_scheduler()
    )
