"""SAM's single-mask low-res logits read out of the low-rank decoder state (:mod:`elements.partition.sam_decode`).

SAM's output upscaling (two kernel-2, stride-2 transposed convolutions, a LayerNorm2d and GELUs)
maps token (i, j) to the 4 × 4 low-res logits (4i + 2a + c, 4j + 2b + e), (a, b) the first
convolution's kernel position and (c, e) the second's; each low-res logit depends on one token
only, so any subset of logits costs only its tokens:

* :func:`sample_logits`: one logit per token (:data:`SAMPLE_POS`), for Alg. 2's plain assignment;
* :func:`window_logits`: all 16 logits of each token in a window per prompt, for Eq. 1's dense
  affinity inside the candidate boxes;
* :class:`TokenCrop`: the decoder state restricted to a square token window per prompt, kept
  between the two phases instead of the whole state (:class:`~elements.partition.sam_decode.TokenRep`
  holds ~1.6 MB per prompt over all g × g = 4096 tokens; a crop of 39 × 39 tokens ~0.4 MB, coefficients in float16).

Both :class:`~elements.partition.sam_decode.TokenRep` (through :func:`project_tokens`) and
:class:`TokenCrop` give ``X[b, t] @ weightᵀ`` at given tokens, with the same arithmetic, so a
window read from a crop equals the same window read from the whole state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Kernel positions ((a, b), (c, e)) of the one logit per token that Alg. 2's plain assignment
#: reads: low-res pixel (4i + 2, 4j + 2) of token (i, j), whose centre is canvas (8j + 5, 8i + 5) px.
SAMPLE_POS = ((1, 1), (0, 0))
#: How a :class:`TokenCrop` stores its coefficients: float16 halves the kept state. They feed only Eq. 1's
#: dense affinity, a sigmoid weighed against β·d²; the plain assignment's samples are read from the full-precision
#: state (``bench/partition.py``'s agreement column measures the whole provider against the full decode).
COEF_DTYPE = torch.float16


def _shared_projection(side, a: torch.Tensor, norms: int, weight: torch.Tensor, name: str) -> torch.Tensor:
    """``A @ weightᵀ`` (T, D), once per image and LayerNorm count."""
    return side.cached(("AWt", name, norms), lambda: a @ weight.T)


def project_tokens(rep, weight: torch.Tensor, name: str, idx: torch.Tensor | slice = slice(None)) -> torch.Tensor:
    """``X[b, t] @ weightᵀ`` without bias for a TokenRep: (B, n, D) at the tokens ``idx``: a slice (the same
    for every prompt, read in place), or (B, n) int64 per prompt (gathered)."""
    aw = _shared_projection(rep.side, rep.a(), rep.norms, weight, name)  # (T, D)
    groups = [g for g in rep.all_groups() if g.n]
    right = [g.e() @ weight.T for g in groups]  # (B, n_g, D)
    b, d = rep.alpha.shape[0], weight.shape[0]
    if isinstance(idx, slice):
        coefs, alpha = [g.flat()[..., idx] for g in groups], rep.alpha[:, idx]
        out = aw[idx].expand(b, -1, -1).clone()
    else:
        coefs = [g.flat().gather(2, idx[:, None, :].expand(-1, g.n, -1)) for g in groups]  # (B, n_g, n)
        alpha = rep.alpha.gather(1, idx)
        out = aw.index_select(0, idx.flatten()).view(b, -1, d)
    for m, coef in zip(right, coefs, strict=True):
        out.baddbmm_(coef.transpose(1, 2), m)
    return out.mul_(alpha[..., None])


def window_index(origin: torch.Tensor, size: tuple[int, int], g: int) -> torch.Tensor:
    """Token indices (B, wh·ww) int64, raster order, of the windows at ``origin`` (B, 2) token (x, y), ``size`` (wh, ww)."""
    wh, ww = size
    ii = torch.arange(wh, device=origin.device)[:, None] + origin[:, 1, None, None]  # (B, wh, 1)
    jj = torch.arange(ww, device=origin.device)[None] + origin[:, 0, None, None]  # (B, 1, ww)
    return (ii * g + jj).reshape(origin.shape[0], -1)


class TokenCrop:
    """A TokenRep's state on a ``w × w``-token window per prompt: what :func:`window_logits` reads there.

    ``origin``: (B, 2) int64 token (x, y) of each window's top-left, all inside the g × g grid.
    Holds the per-prompt rows E (B, K, C), their coefficients and alpha at the window's tokens
    (B, K, w²), (B, w²), and a reference to the shared tokens A.
    """

    def __init__(self, rep, origin: torch.Tensor, w: int) -> None:
        self.side, self.norms, self.a = rep.side, rep.norms, rep.a()
        self.origin, self.w = origin, w
        idx = window_index(origin, (w, w), rep.side.g)
        groups = [g for g in rep.all_groups() if g.n]
        self.rows = torch.cat([g.e() for g in groups], dim=1)  # (B, K, C)
        coef = [g.flat().gather(2, idx[:, None, :].expand(-1, g.n, -1)) for g in groups]
        self.coef = torch.cat(coef, dim=1).to(COEF_DTYPE)  # (B, K, w²)
        self.alpha = rep.alpha.gather(1, idx)  # (B, w²)

    def holds(self, origin: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(B,) bool: whether each prompt's window at ``origin`` (B, 2), ``size`` (wh, ww) lies inside its crop."""
        wh, ww = size
        lo = (origin >= self.origin).all(dim=1)
        return (
            lo & (origin[:, 0] + ww <= self.origin[:, 0] + self.w) & (origin[:, 1] + wh <= self.origin[:, 1] + self.w)
        )

    def select(self, keep: torch.Tensor) -> TokenCrop:
        """The crops of prompts ``keep`` ((n,) int64), in that order."""
        out = object.__new__(TokenCrop)
        out.side, out.norms, out.a, out.w = self.side, self.norms, self.a, self.w
        out.origin, out.rows, out.coef, out.alpha = (x[keep] for x in (self.origin, self.rows, self.coef, self.alpha))
        return out

    def project(self, weight: torch.Tensor, name: str, idx: torch.Tensor) -> torch.Tensor:
        """``X[b, t] @ weightᵀ`` (B, n, D) at global token indices ``idx`` (B, n), which must lie in the crops."""
        g = self.side.g
        aw = _shared_projection(self.side, self.a, self.norms, weight, name)
        local = (idx // g - self.origin[:, 1:2]) * self.w + (idx % g - self.origin[:, 0:1])  # (B, n)
        b, d = idx.shape[0], weight.shape[0]
        out = aw.index_select(0, idx.flatten()).view(b, -1, d)
        coef = self.coef.gather(2, local[:, None, :].expand(-1, self.coef.shape[1], -1)).to(aw.dtype)  # (B, K, n)
        out.baddbmm_(coef.transpose(1, 2), self.rows @ weight.T)
        return out.mul_(self.alpha.gather(1, local)[..., None])


def sample_logits(rep, hyper: torch.Tensor, tokens: slice = slice(None)) -> torch.Tensor:
    """Each prompt's single-mask logit at one low-res pixel per token (:data:`SAMPLE_POS`): (B, T).

    ``rep``: a TokenRep; ``hyper``: (B, C/8), the first mask token's hypernetwork output.
    ``tokens``: only this range of tokens (raster order), then (B, n).
    """
    conv1, norm, act1, conv2, act2 = rep.side.md.output_upscaling
    (a, b), (c, e) = SAMPLE_POS
    y = project_tokens(rep, conv1.weight[:, :, a, b].T, f"up1.{a}{b}", tokens).add_(conv1.bias)  # (B, T, C/4)
    y = act1(F.layer_norm(y, y.shape[-1:], norm.weight, norm.bias, norm.eps))  # LayerNorm2d: over channels
    y = act2(F.linear(y, conv2.weight[:, :, c, e].T, conv2.bias))  # (B, T, C/8)
    return torch.bmm(y, hyper[:, :, None])[..., 0]


def window_logits(src, hyper: torch.Tensor, origin: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Each prompt's single-mask low-res logits over a token window: (B, 4·wh, 4·ww).

    ``src``: a TokenRep, or a :class:`TokenCrop` whose crops hold the windows. ``origin``: (B, 2)
    int64 top-left token (x, y) of each prompt's window; ``size``: (wh, ww) tokens, the same for
    all. Identical to the full upscaling's logits there: each low-res logit depends on one token only.
    """
    conv1, norm, act1, conv2, act2 = src.side.md.output_upscaling
    wh, ww = size
    b = origin.shape[0]
    idx = window_index(origin, size, src.side.g)  # (B, n), raster order within the window
    c4, c8 = conv1.weight.shape[1], conv2.weight.shape[1]
    w1 = conv1.weight.permute(2, 3, 1, 0).reshape(4 * c4, -1)  # (2·2·C/4, C), rows (a, b, o)
    proj = src.project(w1, "up1.all", idx) if isinstance(src, TokenCrop) else project_tokens(src, w1, "up1.all", idx)
    y = proj.add_(conv1.bias.repeat(4)).view(b, -1, 2, 2, c4)
    y = act1(F.layer_norm(y, (c4,), norm.weight, norm.bias, norm.eps))
    w2 = conv2.weight.permute(0, 2, 3, 1).reshape(c4, 4 * c8)  # (C/4, 2·2·C/8), columns (c, e, o)
    y = act2(F.linear(y, w2.T, conv2.bias.repeat(4)))  # (B, n, a, b, (c, e, o))
    low = torch.bmm(y.reshape(b, -1, c8), hyper[:, :, None]).view(b, wh, ww, 2, 2, 2, 2)  # (B, i, j, a, b, c, e)
    return low.permute(0, 1, 3, 5, 2, 4, 6).reshape(b, 4 * wh, 4 * ww)  # rows 4i + 2a + c, cols 4j + 2b + e


__all__ = ["SAMPLE_POS", "TokenCrop", "project_tokens", "sample_logits", "window_logits", "window_index"]
