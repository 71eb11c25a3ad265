"""A float64 NumPy transcription of the official TF U-GAT-IT forward pass (taki0112/UGATIT: UGATIT.generator,
UGATIT.discriminator_{global,local}, ops.conv/instance_norm/adaptive_instance_layer_norm/layer_instance_norm/
fully_connected_with_w/spectral_norm), NHWC, reading TF variable names directly. Independent of the
converter and of the Paddle networks; the tests compare both against it at sizes and settings the shared
bundles do not cover."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

EPS = 1e-5


def _l2n(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(max(float(np.sum(x * x)), 1e-12))


def spectral_norm(kernel: np.ndarray, u: np.ndarray) -> np.ndarray:
    """ops.spectral_norm, first forward after restoring (from the stored u)."""
    w = kernel.reshape(-1, kernel.shape[-1])
    v_hat = _l2n(u @ w.T)
    u_hat = _l2n(v_hat @ w)
    sigma = (v_hat @ w @ u_hat.T).item()
    return kernel / sigma


def conv(x: np.ndarray, v: dict, scope: str, kernel: int, stride: int, pad: int = 0, sn: bool = False) -> np.ndarray:
    """ops.conv with pad_type 'reflect' (+ bias)."""
    if pad > 0:
        if (kernel - stride) % 2 == 0:
            pads = (pad, pad, pad, pad)
        else:
            pads = (pad, kernel - stride - pad, pad, kernel - stride - pad)
        x = np.pad(x, ((0, 0), pads[:2], pads[2:], (0, 0)), mode="reflect")
    if sn:
        k, b = spectral_norm(v[f"{scope}/kernel"], v[f"{scope}/u"]), v[f"{scope}/bias"]
    else:
        k, b = v[f"{scope}/conv2d/kernel"], v[f"{scope}/conv2d/bias"]
    windows = sliding_window_view(x, (kernel, kernel), axis=(1, 2))[:, ::stride, ::stride]  # [N, Ho, Wo, C, k, k]
    return np.einsum("nhwcij,ijco->nhwo", windows, k) + b


def instance_norm(x: np.ndarray, v: dict, scope: str) -> np.ndarray:
    mean, var = x.mean((1, 2), keepdims=True), x.var((1, 2), keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * v[f"{scope}/gamma"] + v[f"{scope}/beta"]


def _ins_layer(x: np.ndarray, rho: np.ndarray) -> np.ndarray:
    x_ins = (x - x.mean((1, 2), keepdims=True)) / np.sqrt(x.var((1, 2), keepdims=True) + EPS)
    x_ln = (x - x.mean((1, 2, 3), keepdims=True)) / np.sqrt(x.var((1, 2, 3), keepdims=True) + EPS)
    return rho * x_ins + (1 - rho) * x_ln


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def lrelu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, 0.2 * x)


def cam(x: np.ndarray, v: dict, scope: str, sn: bool) -> tuple[np.ndarray, np.ndarray]:
    """fully_connected_with_w for GAP and GMP (one kernel + bias), then the re-weighted concat."""
    w = v[f"{scope}/CAM_logit/kernel"]
    if sn:
        w = spectral_norm(w, v[f"{scope}/CAM_logit/u"])
    b = v[f"{scope}/CAM_logit/bias"]
    weights = (w + b)[:, 0]
    logits = np.concatenate([x.mean((1, 2)) @ w + b, x.max((1, 2)) @ w + b], axis=-1)
    return logits, np.concatenate([x * weights, x * weights], axis=-1)


def dense(x: np.ndarray, v: dict, scope: str) -> np.ndarray:
    return x @ v[f"{scope}/dense/kernel"] + v[f"{scope}/dense/bias"]


def generator(x: np.ndarray, v: dict, scope: str, n_res: int, light: bool, smoothing: bool) -> dict:
    s = scope
    x = relu(instance_norm(conv(x, v, f"{s}/conv", 7, 1, 3), v, f"{s}/ins_norm"))
    for i in range(2):
        x = relu(instance_norm(conv(x, v, f"{s}/conv_{i}", 3, 2, 1), v, f"{s}/ins_norm_{i}"))
    for i in range(n_res):
        r = f"{s}/resblock_{i}"
        y = relu(instance_norm(conv(x, v, f"{r}/res1/conv_0", 3, 1, 1), v, f"{r}/res1/instance_norm"))
        x = x + instance_norm(conv(y, v, f"{r}/res2/conv_0", 3, 1, 1), v, f"{r}/res2/instance_norm")
    cam_logit, x = cam(x, v, s, sn=False)
    x = relu(conv(x, v, f"{s}/conv_1x1", 1, 1))
    heatmap = np.squeeze(x.sum(-1))
    h = x.mean((1, 2)) if light else x.reshape(x.shape[0], -1)
    for i in range(2):
        h = relu(dense(h, v, f"{s}/MLP/linear_{i}"))
    gamma, beta = dense(h, v, f"{s}/MLP/gamma")[:, None, None], dense(h, v, f"{s}/MLP/beta")[:, None, None]
    for i in range(n_res):
        r = f"{s}/adaptive_resblock{i}"
        y = x
        for j in (1, 2):
            rho = v[f"{r}/res{j}/instance_layer_norm/rho"]
            if smoothing:
                rho = np.clip(rho - 0.1, 0.0, 1.0)
            y = _ins_layer(conv(y, v, f"{r}/res{j}/conv_0", 3, 1, 1), rho) * gamma + beta
            if j == 1:
                y = relu(y)
        x = x + y
    for i in range(2):
        x = x.repeat(2, axis=1).repeat(2, axis=2)
        x = conv(x, v, f"{s}/up_conv_{i}", 3, 1, 1)
        n = f"{s}/layer_ins_norm_{i}"
        x = relu(_ins_layer(x, v[f"{n}/rho"]) * v[f"{n}/gamma"] + v[f"{n}/beta"])
    image = np.tanh(conv(x, v, f"{s}/G_logit", 7, 1, 3))
    return {"fake": image, "cam_logit": cam_logit, "heatmap": heatmap, "mlp_gamma": gamma, "mlp_beta": beta}


def discriminator(x: np.ndarray, v: dict, scope: str, n_stride2: int, sn: bool) -> dict:
    """discriminator_global (n_stride2 = n_dis - 1) / discriminator_local (n_dis - 3, at least 1)."""
    x = lrelu(conv(x, v, f"{scope}/conv_0", 4, 2, 1, sn))
    for i in range(1, n_stride2):
        x = lrelu(conv(x, v, f"{scope}/conv_{i}", 4, 2, 1, sn))
    x = lrelu(conv(x, v, f"{scope}/conv_last", 4, 1, 1, sn))
    cam_logit, x = cam(x, v, scope, sn)
    x = lrelu(conv(x, v, f"{scope}/conv_1x1", 1, 1))
    heatmap = np.squeeze(x.sum(-1))
    return {"logit": conv(x, v, f"{scope}/D_logit", 4, 1, 1, sn), "cam_logit": cam_logit, "heatmap": heatmap}
