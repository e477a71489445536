"""nnetsauce's fixed feature map, recomputed from its fitted parts, and the chain rule back through it.

nnetsauce's own `cook_test_set` reseeds NumPy's global RNG; recomputing the map from the fitted scalers,
2-means centres and hidden weights avoids that and exposes the linear pieces the rescale rule needs:
inputs -> [inputs, one-hot of 2-means cluster] -> hidden units act([1, standardised] @ W) ->
[direct columns, hidden] standardised -> base model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.preprocessing import StandardScaler


@dataclass(frozen=True)
class MappedRows:
    """What the base model sees for some input rows, plus the pieces the chain rule reads."""

    Z: np.ndarray  # (n, q) standardised mapped features, as the base model receives them
    X: np.ndarray  # (n, p) inputs, float64
    onehot: np.ndarray  # (n, n_clusters) cluster one-hot (empty when no clustering)


@dataclass(frozen=True)
class FeatureMap:
    """The fitted map of one nnetsauce Custom* model and its input-space linear structure."""

    model: Any
    n_inputs: int
    n_clusters: int  # 0 or 2
    direct_link: bool
    n_hidden: int
    hidden_from_inputs: np.ndarray  # (p, h): d pre-activation / d input
    hidden_from_onehot: np.ndarray  # (n_clusters, h): d pre-activation / d one-hot column
    cluster_score_weights: np.ndarray  # (p,): 2-means score s(x) = w @ x + c; cluster 1 iff s > 0

    @property
    def n_mapped(self) -> int:
        direct = self.n_inputs + self.n_clusters if self.direct_link else 0
        return direct + self.n_hidden


def supports_map(model: Any) -> bool:
    """True when the model's map is one this module reproduces exactly and can differentiate."""
    try:
        scalers = [model.nn_scaler_, model.scaler_]
        if model.n_clusters:
            scalers.append(model.clustering_scaler_)
    except AttributeError:
        return False
    return (
        all(type(s) is StandardScaler and s.with_mean and s.with_std for s in scalers)
        and model.n_clusters in (0, 2)
        and (model.n_clusters == 0 or (model.type_clust == "kmeans" and model.cluster_encode))
        and model.dropout == 0
        and model.col_sample == 1
        and model.n_hidden_features > 0
        and getattr(model, "backend", "cpu") == "cpu"
    )


def build_feature_map(model: Any) -> FeatureMap:
    """Read the fitted scalers, centres and weights of a supported nnetsauce model."""
    n_clusters = int(model.n_clusters)
    W = np.asarray(model.W_, dtype=np.float64)
    weights = W[1:] if model.bias else W
    slopes = weights / model.nn_scaler_.scale_[:, None]  # d pre / d augmented column
    n_inputs = slopes.shape[0] - n_clusters
    if n_clusters:
        centres = model.clustering_obj_.cluster_centers_
        score_weights = 2.0 * (centres[1] - centres[0]) / model.clustering_scaler_.scale_
    else:
        score_weights = np.zeros(n_inputs)
    return FeatureMap(
        model=model,
        n_inputs=n_inputs,
        n_clusters=n_clusters,
        direct_link=bool(model.direct_link),
        n_hidden=W.shape[1],
        hidden_from_inputs=slopes[:n_inputs],
        hidden_from_onehot=slopes[n_inputs:],
        cluster_score_weights=score_weights,
    )


def map_rows(fmap: FeatureMap, X: np.ndarray) -> MappedRows:
    """nnetsauce's `cook_test_set` for col_sample=1, without touching NumPy's global RNG."""
    model = fmap.model
    X = np.asarray(X, dtype=np.float64)
    if fmap.n_clusters:
        labels = model.clustering_obj_.predict(model.clustering_scaler_.transform(X))
        onehot = np.eye(fmap.n_clusters)[labels].astype(np.float16).astype(np.float64)
        augmented = np.hstack([X, onehot])
        scaled = model.nn_scaler_.transform(augmented)
        direct = augmented
    else:
        onehot = np.zeros((X.shape[0], 0))
        scaled = model.nn_scaler_.transform(X)
        direct = scaled
    hidden_in = np.hstack([np.ones((X.shape[0], 1)), scaled]) if model.bias else scaled
    hidden = model.activation_func(hidden_in @ model.W_)
    Z = np.hstack([direct, hidden]) if fmap.direct_link else hidden
    return MappedRows(Z=model.scaler_.transform(Z), X=X, onehot=onehot)


def chain_to_inputs(
    fmap: FeatureMap,
    phi_mapped: np.ndarray,
    x: MappedRows,
    z: MappedRows,
    x_index: np.ndarray,
    z_index: np.ndarray,
) -> np.ndarray:
    """(P, p, k) input attributions of pairs from their (P, q, k) mapped-space attributions.

    Rescale rule (DeepLIFT / G-DeepSHAP): a mapped feature's credit goes to the inputs in proportion
    to their share of its change between x and z. Direct copies are 1:1; the one-hot columns follow
    the 2-means linear score; hidden units follow their pre-activation. Shares sum to one per pair,
    so each pair's input attributions keep the sum of its mapped ones.
    """
    p, n_c, h = fmap.n_inputs, fmap.n_clusters, fmap.n_hidden
    dx = x.X[x_index] - z.X[z_index]  # (P, p)
    d_onehot = x.onehot[x_index] - z.onehot[z_index]  # (P, n_c)
    cluster_share = _cluster_shares(fmap, dx, d_onehot)  # (P, p), rows sum to 1 where the cluster moved
    onehot_pre = d_onehot @ fmap.hidden_from_onehot  # (P, h)
    d_pre = dx @ fmap.hidden_from_inputs + onehot_pre
    nonzero = d_pre != 0
    hidden_phi = phi_mapped[:, -h:, :]  # (P, h, k)
    hidden_ratio = np.where(nonzero[:, :, None], hidden_phi / np.where(nonzero, d_pre, 1.0)[:, :, None], 0.0)
    # (P, k, h) @ (h, p): BLAS instead of einsum's generic loops
    through_inputs = np.matmul(hidden_ratio.transpose(0, 2, 1), fmap.hidden_from_inputs.T).transpose(0, 2, 1)
    through_inputs *= dx[:, :, None]
    through_cluster = (hidden_ratio * onehot_pre[:, :, None]).sum(axis=1)  # (P, k)
    phi = through_inputs
    if fmap.direct_link:
        phi = phi + phi_mapped[:, :p, :]
        if n_c:
            through_cluster = through_cluster + phi_mapped[:, p : p + n_c, :].sum(axis=1)
    mapped: np.ndarray = phi + cluster_share[:, :, None] * through_cluster[:, None, :]
    return mapped


def _cluster_shares(fmap: FeatureMap, dx: np.ndarray, d_onehot: np.ndarray) -> np.ndarray:
    """Each input's share of the change in the 2-means score, for pairs whose cluster differs."""
    if not fmap.n_clusters:
        return np.zeros_like(dx)
    contributions = dx * fmap.cluster_score_weights
    d_score = contributions.sum(axis=1, keepdims=True)
    moved = np.abs(d_onehot).sum(axis=1, keepdims=True) > 0
    usable = moved & (d_score != 0)
    # a cluster change with a zero score change is a tie at the boundary: split it evenly
    fallback = np.where(moved, 1.0 / dx.shape[1], 0.0)
    return np.where(usable, contributions / np.where(usable, d_score, 1.0), fallback)
