"""Pure ``nn.Module`` architectures, each registered as a small factory for ``create_model``."""

from __future__ import annotations

from suite.models import dae, edsr, espcn, patchgan, resnet_generator, unet
from suite.models.blocks import ChannelAttention, ResBlock2d, SelfAttention2d
from suite.models.registry import create_model, list_models, register_model

__all__ = [
    "ChannelAttention",
    "ResBlock2d",
    "SelfAttention2d",
    "create_model",
    "dae",
    "edsr",
    "espcn",
    "list_models",
    "patchgan",
    "register_model",
    "resnet_generator",
    "unet",
]
