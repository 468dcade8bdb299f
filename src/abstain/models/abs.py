"""Analysis by synthesis (ABS, Schott et al. 2019): one small VAE per class; an input belongs to
the class whose generator explains it best.

The ten VAEs are ten modules (``ClassVAE``, :mod:`abstain.models.abs_vae`), each trained on
batches of its own class (:func:`abstain.train_abs.train_abs`). Inference folds their decoders
into one grouped network (``groups = classes``: channel block ``c`` of every layer belongs to
class ``c`` only), so it decodes all ten classes in one pass. Each class's encoder is
1->32->32->64->16 (kernels 5/4/3/5, strides 1/2/2/1, BatchNorm, ELU; the 16 outputs are the mean
and log-variance of an 8-d latent), its decoder the transposed mirror 8->32->16->16->1 with a
sigmoid output: 85k parameters per class.

Inference (prototype search, Adam steps on z, the class loss l_y; the modes ``faithful``,
``fast``, ``checked``, ``search``) is described in :mod:`abstain.models.abs_modes`.

The class scales a_y are the reference's "discriminative finetuning" (Schott et al. 2019): one
scalar per class, fitted after training by cross-entropy on validation images when
``ABSConfig.scale_fit_images`` > 0 (:func:`abstain.train_abs.fit_class_scales`; geometric mean
1, so the confidence scale keeps its meaning); all ones otherwise, and in checkpoints written
before they existed.

Beyond the reference, ``ABSConfig.finetune_steps`` > 0 finetunes the ten decoders themselves after
training (:func:`abstain.train_abs.finetune_decoders`): the generative loss plus a cross-entropy on
the class losses at the inferred optimum z* (Danskin's gradient, now to the weights). Off by default.

``forward`` recomputes l at the detached optimum z*, so autograd gives Danskin's gradient
d(a_y l_y)/dx = 2 a_y (x - G_y(z*)) / 784 and white-box attacks run on ABS.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import state_sha256
from ..errors import InputError
from .abs_modes import FINETUNE_MODES, Inference, resolve_mode
from .abs_vae import ClassVAE

PIXELS = 784

#: decoded prototypes shared by every ABS object whose class VAEs hold the same weights (a run
#: loaded again, one CLI command after another in one process): keyed by those weights' bytes,
#: the latent size, the seed and the count; the last few kept. Decoding 8,000 prototypes for ten
#: classes takes seconds (9 s on a 2-core CPU); hashing the weights, milliseconds.
_SHARED_PROTOTYPES: OrderedDict = OrderedDict()
SHARED_PROTOTYPES_KEPT = 4


@dataclass(frozen=True)
class ABSConfig:
    latent: int = 8
    classes: int = 10
    beta: float = 1.0                  # weight of the KL term in the training loss
    max_norm: float = 5.0              # inference projects latents back to this norm
    prototype_seed: int = 0            # the latent draws behind the prototype cache
    #: confidence p_c ∝ exp(-scale * l_c) + offset (the reference's values): inputs no class
    #: explains get a near-uniform output
    confidence_scale: float = 440.0
    confidence_offset: float = 3.9e-5
    #: validation images the class scales a_y are fitted on after training (the reference's
    #: discriminative finetuning; train_abs.fit_class_scales); 0: no fit, every a_y = 1
    scale_fit_images: int = 0
    #: discriminative finetuning of the ten decoders after training (beyond the reference; see
    #: train_abs.finetune_decoders): steps of `FINETUNE_BATCH` training images, Adam learning
    #: rate (cosine decay to 0), weight of the cross-entropy against the generative loss; 0 steps: none
    finetune_steps: int = 0
    finetune_lr: float = 1e-3
    finetune_weight: float = 3.0
    #: the inference that finds z* in that finetuning: None, `train_abs.FINETUNE_INFERENCE`
    #: (1,000 prototypes, 10 steps at rate 0.05 on the best 3 classes); or a mode of
    #: FINETUNE_MODES, that mode's inference (docs/abs.md: "Finetuning at the product's inference")
    finetune_mode: str | None = None

    def __post_init__(self):
        if not 0 <= self.beta < float("inf"):
            raise InputError(f"ABS beta (the KL weight) must be >= 0, got {self.beta}")
        if not 0 <= self.finetune_weight < float("inf"):
            raise InputError(f"ABS finetune_weight must be >= 0, got {self.finetune_weight}")
        if self.finetune_mode is not None and self.finetune_mode not in FINETUNE_MODES:
            raise InputError(f"ABS finetune_mode must be one of {', '.join(FINETUNE_MODES)}, "
                             f"got {self.finetune_mode!r}")
        for name in ("scale_fit_images", "finetune_steps"):
            if getattr(self, name) < 0:
                raise InputError(f"ABS {name} must be >= 0, got {getattr(self, name)}")


def project(z: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scale every latent (last axis) whose norm exceeds `max_norm` back onto that sphere."""
    norm = z.norm(dim=-1, keepdim=True)
    return z * (max_norm / norm.clamp_min(max_norm))


class ABS(nn.Module):
    """Ten class-conditional VAEs and their analysis-by-synthesis inference.

    ``forward(x)``: (N, 1, 28, 28) float in [0, 1] -> logits (N, 10) = minus the scaled class
    losses, with Danskin's gradient to x. Two plain attributes change what it computes:

    * ``mode``: ``"faithful"`` (default; 8,000 prototypes, 50 Adam steps), ``"fast"``, or any
      :class:`Inference`; ``with_mode(mode)`` returns a view with another mode;
    * ``binarize``: threshold the input at 0.5 first (binary ABS; the gradient passes the
      threshold straight through); ``binary()`` returns such a view.

    Views share the weights and the prototype cache with the model they come from; models
    with the same class-VAE weights (a run loaded twice) share their decoded prototypes.
    ``reconstructions(x)`` gives the ten per-class reconstructions G_y(z*_y) as (N, 10, 28, 28);
    ``confidence(logits)`` the calibrated probabilities with the offset.
    """

    def __init__(self, config: ABSConfig = ABSConfig()):
        super().__init__()
        self.config = config
        self.vaes = nn.ModuleList(ClassVAE(config.latent) for _ in range(config.classes))
        #: a_y: logits are -a_y l_y (fitted by train_abs.fit_class_scales; saved with the weights)
        self.register_buffer("class_scale", torch.ones(config.classes))
        self.mode: str | Inference = "faithful"
        self.binarize = False
        self.batch_size = 500           # images per inference chunk (memory, not results)
        self._cache: dict = {}          # shared with views: folded decoder, prototypes

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the class scales existed computed with all of them 1
        state_dict.setdefault(prefix + "class_scale", torch.ones(self.config.classes))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- views ------------------------------------------------------------------------------
    def with_mode(self, mode: str | Inference) -> "ABS":
        self.inference(mode)                           # validates
        view = copy.copy(self)
        view.mode = mode
        return view

    def binary(self) -> "ABS":
        view = copy.copy(self)
        view.binarize = True
        return view

    def inference(self, mode: str | Inference | None = None) -> Inference:
        return resolve_mode(self.mode if mode is None else mode)

    # -- inference path (BatchNorm folded, weights detached, cached) -----------------------
    def _token(self, module: nn.Module | None = None) -> tuple:
        """Changes whenever any weight or buffer of `module` (default: the whole model, the
        class scales included) does."""
        module = self if module is None else module
        return tuple((id(t), t._version) for t in (*module.parameters(), *module.buffers()))

    def _cached(self, key, build):
        # what is cached (folded decoders, prototypes) comes from the class VAEs alone: fitting
        # the class scales keeps it
        token = self._token(self.vaes)
        if self._cache.get("token") != token:
            self._cache.clear()
            self._cache["token"] = token
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def _folded(self) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
        """The ten decoders as one grouped network: per layer, the classes' transposed
        convolutions stacked along the input channels, each with its (eval-mode) BatchNorm
        folded in. Returns [(weight, bias, stride)]."""
        per_class = []
        for vae in self.vaes:
            mods, layers = list(vae.decoder), []
            for i, conv in enumerate(mods):
                if not isinstance(conv, nn.ConvTranspose2d):
                    continue
                w, b = conv.weight.detach(), conv.bias.detach()       # w: (in, out, k, k)
                if i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
                    bn = mods[i + 1]
                    scale = bn.weight.detach() / (bn.running_var + bn.eps).sqrt()
                    w, b = w * scale[None, :, None, None], (b - bn.running_mean) * scale + bn.bias.detach()
                layers.append((w, b, conv.stride[0]))
            per_class.append(layers)
        return [(torch.cat([p[k][0] for p in per_class]).contiguous(),
                 torch.cat([p[k][1] for p in per_class]).contiguous(), per_class[0][k][2])
                for k in range(len(per_class[0]))]

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Inference decoder: (N, C, L) -> (N, C, 784) in [0, 1], eval-mode BatchNorm, no
        gradient to the weights (gradient to z only)."""
        layers = self._cached("folded", self._folded)
        h = z.reshape(len(z), -1, 1, 1)
        for k, (w, b, stride) in enumerate(layers):
            h = F.conv_transpose2d(h, w.to(h), b.to(h), stride=stride, groups=self.config.classes)
            h = F.elu(h) if k + 1 < len(layers) else torch.sigmoid(h)
        return h.flatten(2)

    def _per_class(self) -> list[list[tuple[torch.Tensor, torch.Tensor, int]]]:
        c = self.config.classes
        return [[(w[k * len(w) // c:(k + 1) * len(w) // c].contiguous(),
                  b[k * len(b) // c:(k + 1) * len(b) // c].contiguous(), s)
                 for w, b, s in self._cached("folded", self._folded)] for k in range(c)]

    def generate_classes(self, z: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        """Like `generate` for pairs: latents z (P, L), classes cls (P,) -> G_cls(z) (P, 784)."""
        layers = self._cached("per_class", self._per_class)
        order = torch.argsort(cls, stable=True)
        counts = torch.bincount(cls, minlength=self.config.classes).tolist()
        parts, start = [], 0
        for c, n in enumerate(counts):
            if n == 0:
                continue
            h = z[order[start:start + n]][:, :, None, None]
            for k, (w, b, stride) in enumerate(layers[c]):
                h = F.conv_transpose2d(h, w.to(h), b.to(h), stride=stride)
                h = F.elu(h) if k + 1 < len(layers[c]) else torch.sigmoid(h)
            parts.append(h.flatten(1))
            start += n
        return torch.cat(parts)[torch.argsort(order)]

    def prototypes(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The n most probable of n / 0.9 draws from N(0, I) (seeded), decoded by every class:
        latents (n, L), images (C, n, 784), prior terms 1/2 ||z||^2 + ||G(z)||^2 (C, n)."""
        def build():
            gen = torch.Generator().manual_seed(self.config.prototype_seed)
            draws = torch.randn(n * 10 // 9, self.config.latent, generator=gen)
            z = draws[draws.norm(dim=1).argsort()[:n]]
            with torch.no_grad():
                # chunks of 125 latents: ~1.5x faster than 1,000 on a CPU (cache), same numbers
                images = torch.cat([self.generate(z[i:i + 125, None].expand(-1, self.config.classes, -1))
                                    for i in range(0, n, 125)]).transpose(0, 1).contiguous()
            const = 0.5 * z.pow(2).sum(1) + images.pow(2).sum(-1)
            return z, images, const

        def shared():
            key = (state_sha256(self.vaes.state_dict()), self.config.latent, self.config.prototype_seed, n)
            if key in _SHARED_PROTOTYPES:
                _SHARED_PROTOTYPES.move_to_end(key)
            else:
                _SHARED_PROTOTYPES[key] = build()
                while len(_SHARED_PROTOTYPES) > SHARED_PROTOTYPES_KEPT:
                    _SHARED_PROTOTYPES.popitem(last=False)
            return _SHARED_PROTOTYPES[key]
        return self._cached(("prototypes", n), shared)


    @torch.no_grad()
    def nearest_prototypes(self, x: torch.Tensor, n: int, prototypes: tuple | None = None) -> torch.Tensor:
        """x (N, 784) -> for each class, the index of the prototype with the lowest loss (N, C).
        `prototypes`: a (latents, images, prior terms) triple as `prototypes(n)` returns, used
        instead of the model's own (finetuning searches ones decoded a few steps earlier)."""
        _, images, const = self.prototypes(n) if prototypes is None else prototypes
        # ||x - g||^2 + 1/2 ||z||^2 = ||x||^2 - 2 x.g + (||g||^2 + 1/2 ||z||^2); ||x||^2 is shared
        scores = const[None] - 2.0 * torch.einsum("np,ckp->nck", x.to(images), images)
        return scores.argmin(-1)

    @torch.no_grad()
    def solve(self, x: torch.Tensor, inference: Inference,
              start: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The optimum latent of every class for images x (N, 784) and its decoding:
        z* (N, C, L), G(z*) (N, C, 784); no gradient anywhere. `start` (N, C, L): latents to
        start the steps from instead of the best prototypes (decoded afresh). With
        `inference.check`, images whose two best logits end closer than `check_margin` are
        solved again with the check inference."""
        z, rec = self._solve(x, inference, start)
        if inference.check is None:
            return z, rec
        best = (-self.class_scale * self._losses(x, z, rec)).topk(2, dim=1).values
        close = (best[:, 0] - best[:, 1] < inference.check_margin).nonzero().flatten()
        if len(close):
            z[close], rec[close] = self.solve(x[close], inference.check,
                                              None if start is None else start[close])
        return z, rec

    def _solve(self, x: torch.Tensor, inference: Inference,
               start: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config.classes
        if start is None:
            idx = self.nearest_prototypes(x, inference.prototypes)
            z0, images, _ = self.prototypes(inference.prototypes)
            z, rec = z0[idx], images[torch.arange(c), idx]     # the cache already holds G(z0)
        else:
            z, rec = start.clone(), self.generate(start)
        if inference.steps == 0:
            return z, rec
        k = min(inference.refine or c, c)
        if k == c:
            z = self._adam(z, lambda q: self._losses(x, q, self.generate(q)).sum(), inference)
            return z, self.generate(z)
        top = (self._losses(x, z, rec) * self.class_scale).topk(k, dim=1, largest=False).indices  # (N, k)
        rows = torch.arange(len(x))[:, None].expand_as(top)
        xp, cls = x[rows.flatten()], top.flatten()                             # one row per pair

        def loss(q):
            return ((xp - self.generate_classes(q, cls)).pow(2).sum() + 0.5 * q.pow(2).sum()) / PIXELS
        zp = self._adam(z[rows, top].flatten(0, 1), loss, inference)
        z[rows, top] = zp.view(len(x), k, -1)
        rec[rows, top] = self.generate_classes(zp, cls).view(len(x), k, -1)
        return z, rec

    def _adam(self, z0: torch.Tensor, loss_fn, inference: Inference) -> torch.Tensor:
        """`inference.steps` Adam steps on z from z0, each followed by the norm projection."""
        with torch.enable_grad():
            z = z0.clone().requires_grad_(True)
            opt = torch.optim.Adam([z], lr=inference.lr)
            for _ in range(inference.steps):
                loss = loss_fn(z)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    z.copy_(project(z, self.config.max_norm))
        return z.detach()

    @staticmethod
    def _losses(x: torch.Tensor, z: torch.Tensor, rec: torch.Tensor) -> torch.Tensor:
        """(||x - rec||^2 + 1/2 ||z||^2) / 784 for x (N, 784), z (N, C, L), rec (N, C, 784)."""
        return ((x[:, None] - rec).pow(2).sum(-1) + 0.5 * z.pow(2).sum(-1)) / PIXELS

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"ABS expects (N, 1, 28, 28) images, got {tuple(x.shape)}")
        x = x.flatten(1)
        if self.binarize:          # straight-through: forward thresholds, gradient passes as is
            x = x + ((x > 0.5).to(x) - x).detach()
        return x

    def class_losses(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) -> l (N, C) before the class scales, differentiable in x with
        Danskin's gradient: z* and G(z*) are constants, so dl_y/dx = 2 (x - G_y(z*)) / 784."""
        inference, x = self.inference(), self._prepare(x)
        out = []
        for i in range(0, len(x), self.batch_size):
            xb = x[i:i + self.batch_size]
            z, rec = self.solve(xb.detach(), inference)
            out.append(self._losses(xb, z, rec))
        return torch.cat(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.class_scale * self.class_losses(x)

    @torch.no_grad()
    def explain(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 1, 28, 28) -> logits -a l (N, C) and each class's best explanation G_y(z*_y)
        (N, C, 28, 28), from one solve."""
        inference, x = self.inference(), self._prepare(x)
        logits, recs = [], []
        for i in range(0, len(x), self.batch_size):
            xb = x[i:i + self.batch_size]
            z, rec = self.solve(xb, inference)
            logits.append(-self.class_scale * self._losses(xb, z, rec))
            recs.append(rec)
        return torch.cat(logits), torch.cat(recs).view(len(x), self.config.classes, 28, 28)

    def reconstructions(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) -> each class's best explanation G_y(z*_y), (N, C, 28, 28)."""
        return self.explain(x)[1]

    def confidence(self, logits: torch.Tensor) -> torch.Tensor:
        """Probabilities p_c ∝ exp(scale * logit_c) + offset, with logits = -a l (N, C)."""
        w = torch.exp(self.config.confidence_scale * logits.clamp_max(0.0)) + self.config.confidence_offset
        return w / w.sum(-1, keepdim=True)


def abs_parameters_per_class(config: ABSConfig = ABSConfig()) -> int:
    return sum(p.numel() for p in ABS(config).parameters()) // config.classes


__all__ = ["ABS", "ABSConfig", "project", "abs_parameters_per_class"]
