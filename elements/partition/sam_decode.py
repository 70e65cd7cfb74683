"""SAM's mask decoder for many point prompts on one image: exact, in low-rank form.

Alg. 2 asks SAM for one mask per query (N = 256 point prompts per image). segment-anything's
``MaskDecoder`` runs its two-way transformer over all T = g × g = 64 × 64 image tokens for
every prompt: ~0.94 GMAC of (T, 256) × (256, 128) projections per prompt, plus 0.4 GMAC of
output upscaling. This module gives the same logits, to float rounding (max |Δlogit| at most
1.3e-5 of the largest |logit| on the 8 photos of ``bench/partition.py``), with about a tenth of
the arithmetic, because a prompt changes the image tokens only through a few vectors:

* An image→token attention adds to token t the mix ``Σ_jh w[t, j, h] · u[j, h]`` of J × H = 7 × 8
  vectors ``u[j, h] = W_o[:, head h] @ v[j, h]`` (v: the 7 prompt tokens' values, W_o the output
  projection). Before layer 0's LayerNorm, token t of prompt b is thus ``s[t] + w[b, t] @ U[b]``:
  the shared image token plus a mix of 56 per-prompt rows; as each head's weights sum to 1,
  48 rows (u[j, h] − u[0, h], j ≥ 1) and one per-prompt constant row (Σ_h u[0, h] + bias) do.
* A LayerNorm turns x into ``γ ⊙ (x − μ)/σ + β``: two scalars per token, which follow from
  inner products (‖s[t]‖², s[t]·u, u·u'), never from the (T, C) tokens themselves.
* A later linear map W of the tokens is ``W s`` (once per image) plus ``w @ (U Wᵀ)`` per prompt,
  a (K, T) × (K, ·) product with K ≈ 50-100 instead of C = 256; attention against the 7 prompt
  tokens needs only such products.
* Only the first mask token's output feeds the single-mask hypernetwork, so the final
  token→image attention runs for that token alone (attention rows are independent).

The output upscaling (logits from this state) is :mod:`elements.partition.sam_readout`.

The per-prompt state is :class:`TokenRep`: ``X[b, t] = alpha[b, t] · (A[t] + Σ_k z[b, k, t] · E[b, k])``,
with A the shared image tokens with the LayerNorm gains applied so far (T, C), E per-prompt rows
(K, C) and z their coefficients (B, K, T), T innermost. A LayerNorm then only rescales alpha and
adds two constant rows; z itself never changes. Attention rows are kept factored (per-head
values times the fixed W_o), so E·A costs d = 16 MACs per row and token. Per prompt: ~0.14 GMAC.

Layouts: attention-sized tensors are ``(B, J, H, T)``, rows ordered (j, h), so that both the
per-prompt products (one (J·H, K) × (K, T) matmul per prompt) and the per-head products with
the shared tensors (one (B·J, d) × (d, T) matmul per head, row stride H·T) write into them in
place. Large temporaries are avoided: fresh pages cost more than the arithmetic here.

Coordinates: tokens in raster order (row i = y, column j = x) of the g × g grid; one token
covers 16 × 16 SAM input px = 8 × 8 canvas px. The upscaling (two kernel-2, stride-2 transposed
convolutions) maps token (i, j) to the 4 × 4 low-res logits (4i + 2a + c, 4j + 2b + e), (a, b)
the first convolution's kernel position and (c, e) the second's.
"""

from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F


class ImageSide:
    """Per-image tensors shared by every prompt, and a cache of their products with fixed weights.

    ``features``: ``(1, C, g, g)`` image embedding; ``sam``: a segment-anything ``Sam``.
    """

    def __init__(self, sam, features: torch.Tensor) -> None:
        pe = sam.prompt_encoder
        self.md = sam.mask_decoder
        self.g = features.shape[-1]
        self.s = (features + pe.no_mask_embed.weight.reshape(1, -1, 1, 1))[0].flatten(1).T.contiguous()  # (T, C)
        self.pos = pe.get_dense_pe()[0].flatten(1).T.contiguous()  # (T, C)
        self._cache: dict = {}
        self._lock = threading.RLock()  # prompt chunks decode in parallel threads; each product is made once

    def cached(self, key, fn):
        with self._lock:
            if key not in self._cache:
                self._cache[key] = fn()
            return self._cache[key]


def _heads_view(x: torch.Tensor, h: int) -> torch.Tensor:
    """A contiguous ``(B, J, H, T)`` tensor as ``(H, B·J, T)`` (row stride H·T), for per-head matmuls in place."""
    b, j, _, t = x.shape
    return x.as_strided((h, b * j, t), (t, h * t, 1))


class _Group:
    """Rows of E and their coefficients ``coef`` (B, n, T).

    ``kind="attn"``: rows ``scale ⊙ (W[:, head h] @ vals[b, j, h])``, W (C, H·d) fixed,
    vals (B, J, H, d), coef (B, J, H, T). ``kind="rows"``: per-prompt rows (B, R, C).
    ``kind="const"``: rows (R, C), the same for every prompt.
    """

    def __init__(self, kind: str, coef: torch.Tensor, *, name=None, w=None, vals=None, rows=None) -> None:
        self.kind, self.coef, self.name, self.w, self.vals, self.rows = kind, coef, name, w, vals, rows
        self.scale = None if w is None else torch.ones_like(w[:, 0])

    @property
    def n(self) -> int:
        return self.coef.shape[1] * (self.coef.shape[2] if self.coef.dim() == 4 else 1)

    def flat(self) -> torch.Tensor:
        return self.coef.flatten(1, -2)  # (B, n, T)

    def e(self) -> torch.Tensor:
        """This group's rows of E: (B, n, C)."""
        if self.kind == "const":
            return self.rows.expand(self.coef.shape[0], -1, -1)
        if self.kind == "rows":
            return self.rows
        h, d = self.vals.shape[2], self.vals.shape[3]
        basis = (self.w * self.scale[:, None]).T.reshape(h, d, -1)  # (H, d, C)
        return torch.einsum("bjhd,hdc->bjhc", self.vals, basis).flatten(1, 2)

    def apply_gain(self, gamma: torch.Tensor) -> None:
        if self.kind == "attn":
            self.scale = self.scale * gamma
        else:
            self.rows = self.rows * gamma


class TokenRep:
    """The image tokens of B prompts: ``X[b, t] = alpha[b, t] · (A[t] + Σ_k z[b, k, t] · E[b, k])`` (B, T, C)."""

    def __init__(self, side: ImageSide, b: int) -> None:
        self.side = side
        self.alpha = side.s.new_ones((b, side.s.shape[0]))  # (B, T)
        self.norms = 0  # LayerNorms applied so far: keys the shared products in side's cache
        self.gain = torch.ones_like(side.s[0])  # (C,): LayerNorm gains applied to A
        self.groups: list[_Group] = []
        self.const_coef = side.s.new_zeros((b, 0, side.s.shape[0]))  # (B, R, T)
        self.const_rows = side.s.new_zeros((0, side.s.shape[1]))  # (R, C)

    def all_groups(self) -> list[_Group]:
        return [*self.groups, _Group("const", self.const_coef, rows=self.const_rows)]

    def a(self) -> torch.Tensor:
        return self.side.cached(("A", self.norms), lambda: self.side.s * self.gain)

    def rows(self) -> torch.Tensor:
        """E: (B, K, C), in group order."""
        return torch.cat([g.e() for g in self.all_groups()], dim=1)

    def add_attention(self, name: str, w_out: torch.Tensor, vals: torch.Tensor, coef: torch.Tensor) -> None:
        """X += alpha · Σ_jh coef[b, j, h, t] · (w_out[:, head h] @ vals[b, j, h]); coef (B, J, H, T)."""
        self.groups.append(_Group("attn", coef, name=name, w=w_out, vals=vals))

    def add_rows(self, rows: torch.Tensor, coef: torch.Tensor) -> None:
        """X += alpha · Σ_r coef[b, r, t] · rows[b, r]; per-prompt rows (B, R, C), coef (B, R, T)."""
        self.groups.append(_Group("rows", coef, rows=rows))

    def add_const(self, row: torch.Tensor, coef: torch.Tensor) -> None:
        """X += alpha · coef[b, t] · row; row (C,), coef (B, T)."""
        self.const_rows = torch.cat([self.const_rows, row[None]])
        self.const_coef = torch.cat([self.const_coef, coef[:, None]], dim=1)

    def coef_mm(self, left: list[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
        """``out = Σ_g left[g] @ coef_g``: left[g] (B, m, n_g), out (B, m, T), written in place."""
        first = True
        for m, g in zip(left, self.all_groups(), strict=True):
            if m.shape[-1] == 0:
                continue
            if first:
                torch.bmm(m, g.flat(), out=out)
                first = False
            else:
                out.baddbmm_(m, g.flat())
        if first:
            out.zero_()
        return out

    def mm_coef(self, p: torch.Tensor) -> torch.Tensor:
        """``p @ zᵀ``: p (B, m, T) -> (B, m, K), in group order."""
        return torch.cat([torch.bmm(p, g.flat().transpose(1, 2)) for g in self.all_groups()], dim=-1)

    def split(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Split the last dimension (K) of x by group."""
        return list(torch.split(x, [g.n for g in self.all_groups()], dim=-1))

    def rows_dot_a(self) -> list[torch.Tensor]:
        """``E[b, k] · A[t]`` per group, (B, n_g, T); attention rows at d MACs per row and token."""
        out = []
        for g in self.all_groups():
            if g.kind == "const":
                out.append((g.rows @ self.a().T).expand(g.coef.shape[0], -1, -1))
                continue
            if g.kind == "rows":
                out.append(g.rows @ self.a().T)
                continue
            b, j, h, d = g.vals.shape
            t = self.alpha.shape[1]
            fa = self.side.cached(  # (H, d, T): (scale ⊙ W[:, head h])ᵀ A[t]
                ("WA", g.name, self.norms),
                lambda g=g, h=h, d=d, t=t: ((g.w * g.scale[:, None]).T @ self.a().T).view(h, d, t),
            )
            res = g.coef.new_empty(g.coef.shape)
            torch.bmm(g.vals.permute(2, 0, 1, 3).reshape(h, b * j, d), fa, out=_heads_view(res, h))
            out.append(res.flatten(1, 2))
        return out

    def layer_norm(self, norm: torch.nn.LayerNorm) -> None:
        """X ← γ ⊙ (X − μ)/σ + β over C; μ and σ from inner products; z is left as it is.

        The variance is taken of the centred rows (Ẽ = E − mean, Ã likewise), not as E[x²] − μ²,
        which would cancel in float32 where a token's mean is large.
        """
        a_mean = self.side.cached(("Am", self.norms), lambda: self.a().mean(-1))  # (T,)
        a_var = self.side.cached(("Av", self.norms), lambda: self.a().var(-1, correction=0))  # (T,) ‖Ã‖²/C
        groups = self.all_groups()
        es = [g.e() for g in groups]
        e = torch.cat(es, dim=1)  # (B, K, C)
        c = e.shape[-1]
        e_mean = e.mean(-1)  # (B, K)
        mean = self.coef_mm(
            list(torch.split(e_mean[:, None], [g.n for g in groups], dim=-1)),
            self.alpha.new_empty((e.shape[0], 1, a_mean.shape[0])),
        )[:, 0]  # (B, T): Σ_k z_k mean(E_k)
        ec = e - e_mean[..., None]
        gram = self.split(ec @ ec.transpose(1, 2))  # per group: (B, K, n_g), of the centred rows
        sq = torch.zeros_like(self.alpha)  # Σ_k z_k (2 E_k·A + (G̃ z)_k) -> + ‖Ã‖² − 2 C Am Σ_k z_k mean(E_k)
        # zᵀ G̃ z = Σ_i z_i·(G̃_ii z_i + 2 Σ_{j>i} G̃_ij z_j): each off-diagonal block once
        for i, (g, ea) in enumerate(zip(groups, self.rows_dot_a(), strict=True)):
            if g.n == 0:
                continue
            rows = slice(sum(x.n for x in groups[:i]), sum(x.n for x in groups[: i + 1]))
            y = ea.mul(2) if ea.stride(0) == 0 else ea.mul_(2)
            for j in range(i, len(groups)):
                if groups[j].n:
                    y.baddbmm_(gram[j][:, rows], groups[j].flat(), alpha=1.0 if j == i else 2.0)
            sq.add_(y.mul_(g.flat()).sum(1))
        var = sq.div_(c).sub_(mean * (2 * a_mean)).add_(a_var).mul_(self.alpha.square())
        mean.add_(a_mean)  # the bracket's mean: μ = alpha · mean
        r = var.clamp_min_(0).add_(norm.eps).rsqrt_()  # (B, T)
        gamma, beta = norm.weight, norm.bias
        self.alpha = self.alpha * r
        for g in self.groups:
            g.apply_gain(gamma)
        self.const_rows = self.const_rows * gamma
        self.gain = self.gain * gamma
        self.norms += 1
        self.add_const(gamma, -mean)
        self.add_const(beta, 1.0 / self.alpha)

    def linear(self, weight: torch.Tensor, bias: torch.Tensor | None, name: str, *, pos: bool = False) -> tuple:
        """``(X [+ pos]) @ weightᵀ + bias = alpha ⊙ (AW + Σ_k z_k EW_k) + P``, in pieces.

        Returns AW (D, T) and P (D, T), shared and cached per image, and EW per group (B, n_g, D).
        """
        aw = self.side.cached(("AW", name, self.norms), lambda: weight @ self.a().T)
        p = self.side.cached(
            ("P", name, pos),
            lambda: (
                (weight @ self.side.pos.T if pos else torch.zeros_like(aw)) + (0 if bias is None else bias[:, None])
            ),
        )
        return aw, [x @ weight.T for x in (g.e() for g in self.all_groups())], p

    def materialize(self) -> torch.Tensor:
        """X itself, (B, T, C) (tests)."""
        z = torch.cat([g.flat() for g in self.all_groups()], dim=1)
        return self.alpha[..., None] * (self.a() + z.transpose(1, 2) @ self.rows())


def _logits(q: torch.Tensor, aw: torch.Tensor, ew: list, pw: torch.Tensor, rep: TokenRep, h: int) -> torch.Tensor:
    """``q · (alpha ⊙ (AW + Σ z EW) + P)`` per head: q (B, J, H, d) -> (B, J, H, T), rows (j, h)."""
    b, j, _, d = q.shape
    t = aw.shape[-1]
    left = [torch.einsum("bjhd,bkhd->bjhk", q, x.view(b, -1, h, d)).reshape(b, j * h, -1) for x in ew]
    qh = q.permute(2, 0, 1, 3).reshape(h, b * j, d)
    out = q.new_empty((b, j, h, t))
    hv = _heads_view(out, h)
    if any(x.shape[-1] for x in left):
        rep.coef_mm(left, out.view(b, j * h, t))
        hv.baddbmm_(qh, aw.view(h, d, t))
    else:  # no per-prompt rows yet (layer 0)
        torch.bmm(qh, aw.view(h, d, t), out=hv)
    out.mul_(rep.alpha[:, None, None])
    hv.baddbmm_(qh, pw.view(h, d, t))
    return out


def _token_to_image(attn, q_in: torch.Tensor, rep: TokenRep, name: str) -> torch.Tensor:
    """segment-anything's ``Attention(q=q_in, k=X + pos, v=X)`` with X = rep; q_in (B, J, C) -> (B, J, C)."""
    h = attn.num_heads
    b, j, _ = q_in.shape
    q = attn.q_proj(q_in)
    d = q.shape[-1] // h
    q = (q * (1.0 / math.sqrt(d))).view(b, j, h, d)
    ak, ek, pk = rep.linear(attn.k_proj.weight, attn.k_proj.bias, name + ".k", pos=True)
    av, ev, pv = rep.linear(attn.v_proj.weight, attn.v_proj.bias, name + ".v")
    t = ak.shape[-1]
    p = torch.softmax(_logits(q, ak, ek, pk, rep, h), dim=-1)  # (B, J, H, T), over the T image tokens
    out = torch.bmm(_heads_view(p, h), pv.view(h, d, t).transpose(1, 2))  # (H, B·J, d)
    pa = p.mul_(rep.alpha[:, None, None])
    out.baddbmm_(_heads_view(pa, h), av.view(h, d, t).transpose(1, 2))
    out = out.view(h, b, j, d).permute(1, 2, 0, 3)  # (B, J, H, d)
    pz = rep.mm_coef(pa.view(b, j * h, t)).view(b, j, h, -1)  # (B, J, H, K)
    out = out + torch.einsum("bjhk,bkhd->bjhd", pz, torch.cat(ev, dim=1).view(b, -1, h, d))
    return attn.out_proj(out.reshape(b, j, h * d))


def _image_to_token(attn, k_in: torch.Tensor, v_in: torch.Tensor, rep: TokenRep, name: str) -> None:
    """X += segment-anything's ``Attention(q=X + pos, k=k_in, v=v_in)``, in place; k_in, v_in (B, J, C)."""
    h = attn.num_heads
    b, j, _ = k_in.shape
    k = attn.k_proj(k_in)
    d = k.shape[-1] // h
    k = (k * (1.0 / math.sqrt(d))).view(b, j, h, d)
    v = attn.v_proj(v_in).view(b, j, h, d)
    aq, eq, pq = rep.linear(attn.q_proj.weight, attn.q_proj.bias, name + ".q", pos=True)
    w = torch.softmax(_logits(k, aq, eq, pq, rep, h), dim=1)  # (B, J, H, T), over the J prompt tokens
    # Σ_j w_j u_j = u_0 + Σ_{j≥1} w_j (u_j − u_0) per head (the weights sum to 1): J − 1 rows per head, and
    # u_0 summed over the heads joins the output bias as one per-prompt row
    rep.add_attention(name + ".o", attn.out_proj.weight, v[:, 1:] - v[:, :1], w[:, 1:].div(rep.alpha[:, None, None]))
    rep.add_rows(attn.out_proj(v[:, 0].flatten(1))[:, None], (1.0 / rep.alpha)[:, None])


def _attention(attn, q, k, v):
    """segment-anything's ``Attention.forward`` on the (B, J, C) prompt tokens."""
    h = attn.num_heads
    q, k, v = (
        p(x).unflatten(-1, (h, -1)).transpose(1, 2) for p, x in ((attn.q_proj, q), (attn.k_proj, k), (attn.v_proj, v))
    )
    return attn.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2))


def two_way(side: ImageSide, tokens: torch.Tensor) -> tuple[torch.Tensor, TokenRep]:
    """segment-anything's ``TwoWayTransformer.forward`` for B prompts on one image.

    ``tokens``: (B, J, C): the IoU token, the mask tokens, then the sparse prompt embeddings.
    Returns the first mask token's output (B, C) (the only one the single-mask output reads)
    and the image tokens as a :class:`TokenRep`.
    """
    tr = side.md.transformer
    rep = TokenRep(side, tokens.shape[0])
    queries = tokens
    for i, layer in enumerate(tr.layers):
        if i == 0:  # skip_first_layer_pe
            queries = layer.norm1(_attention(layer.self_attn, queries, queries, queries))
        else:
            q = queries + tokens
            queries = layer.norm1(queries + _attention(layer.self_attn, q, q, queries))
        t2i = _token_to_image(layer.cross_attn_token_to_image, queries + tokens, rep, f"{i}.ti")
        queries = layer.norm2(queries + t2i)
        queries = layer.norm3(queries + layer.mlp(queries))
        _image_to_token(layer.cross_attn_image_to_token, queries + tokens, queries, rep, f"{i}.it")
        rep.layer_norm(layer.norm4)
    mask0 = slice(1, 2)  # the first mask token (after the IoU token)
    attn = _token_to_image(tr.final_attn_token_to_image, (queries + tokens)[:, mask0], rep, "final")
    return tr.norm_final_attn(queries[:, mask0] + attn)[:, 0], rep
