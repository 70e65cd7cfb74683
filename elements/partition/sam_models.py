"""Building SAM models: a checkpoint (ViT-B/L/H), the distilled SAM (``vit_t``), or a toy random-init SAM for tests."""

from __future__ import annotations

from elements import defaults
from elements.errors import UserError
from elements.partition.sam_modules import sam_modeling

MODEL_TYPES = ("vit_b", "vit_l", "vit_h", "vit_t")  # vit_t: the distilled SAM (elements/partition/tinysam.py)


def load_sam(
    checkpoint: str | None = None,
    model_type: str | None = None,
    device: str = "cpu",
    *,
    tinysam: str | None = None,
    local_only: bool = False,
):
    """Build a SAM model from a local checkpoint or a Hub reference (``repo_id:path``).

    ``model_type="vit_t"`` is the distilled SAM (:func:`elements.partition.tinysam.load_tinysam`,
    found through ``tinysam`` / ``EIE_TINYSAM``, the cache or npm). The returned model carries
    ``model_type``, ``model_file`` and ``source`` (one sentence saying where it came from).
    Weights are loaded with ``torch.load(weights_only=True)``: the official ``.pth`` files are
    plain state dicts, and nothing else should be unpickled. ``local_only``: never download.
    """
    ref = defaults.SAM_CHECKPOINT.get(checkpoint)
    model_type = defaults.SAM_MODEL_TYPE.get(model_type)
    if model_type == "vit_t":
        from elements.partition.tinysam import load_tinysam

        return load_tinysam(tinysam, device, allow_npm=not local_only)
    import torch
    from segment_anything import sam_model_registry

    from elements.hub import local_file, resolve_file

    if model_type not in sam_model_registry or model_type == "default":
        raise UserError(f"Unknown SAM model type '{model_type}'; use one of {', '.join(MODEL_TYPES)}.")
    if local_only:
        path = local_file(ref)
        if path is None:
            raise UserError(f"the SAM {model_type} checkpoint '{ref}' is not on this machine")
    else:
        path = resolve_file(ref, what="The SAM checkpoint", env=defaults.SAM_CHECKPOINT.env)
    # The random init is overwritten by the checkpoint; fork the RNG so that loading SAM never
    # shifts the caller's random stream (exact resume of training that partitions with SAM).
    with torch.random.fork_rng(devices=[]):
        sam = sam_model_registry[model_type]()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        sam.load_state_dict(state)
    except Exception as err:
        raise UserError(f"'{path}' is not a {model_type} SAM checkpoint ({type(err).__name__}).") from err
    sam = sam.to(device).eval()
    sam.model_type, sam.model_file, sam.source = model_type, str(path), f"SAM {model_type} from {path}"
    return sam


def build_tiny_sam(
    *,
    img_size: int = 256,
    embed_dim: int = 32,
    depth: int = 1,
    out_chans: int = 32,
    decoder_depth: int = 1,
    seed: int = 0,
):
    """A random-init SAM with the real architecture at toy size, for tests and benchmarks."""
    import torch

    m = sam_modeling()
    ImageEncoderViT, MaskDecoder, PromptEncoder = m.ImageEncoderViT, m.MaskDecoder, m.PromptEncoder
    Sam, TwoWayTransformer = m.Sam, m.TwoWayTransformer
    torch.manual_seed(seed)
    patch = 16
    emb = img_size // patch
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=img_size,
            patch_size=patch,
            in_chans=3,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=2,
            mlp_ratio=2.0,
            out_chans=out_chans,
            qkv_bias=True,
            use_rel_pos=False,
            window_size=0,
            global_attn_indexes=(),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=out_chans,
            image_embedding_size=(emb, emb),
            input_image_size=(img_size, img_size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=decoder_depth, embedding_dim=out_chans, mlp_dim=32, num_heads=2),
            transformer_dim=out_chans,
            iou_head_depth=1,
            iou_head_hidden_dim=16,
        ),
    )
    return sam.eval()


__all__ = ["MODEL_TYPES", "build_tiny_sam", "load_sam"]
