"""Eval mode in channels-last: the same weights, laid out so that a CPU runs the convolutions
faster (bench/layout_speed.py)."""
from __future__ import annotations

import torch
from torch import nn


class EvalChannelsLast(nn.Module):
    """A module whose ``train(False)`` (so ``eval()``) lays its convolution weights out
    channels-last and whose ``train(True)`` lays them back in the default layout, so training
    takes the same steps, bit for bit, as without this. The values never change; eval-mode
    outputs differ from the default layout's in the last bits only (about 1e-6 relative)."""

    def train(self, mode: bool = True):
        super().train(mode)
        layout = torch.contiguous_format if mode else torch.channels_last
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                # a copy, not .contiguous(): a one-channel weight counts as contiguous in both
                # layouts, and only the canonical strides make the convolution pick channels-last
                m.weight.data = torch.empty_like(m.weight.data, memory_format=layout).copy_(m.weight.data)
        return self
