"""irislib UNet: guided-diffusion's keys and maths, conditioning, 320 px, checkpointing, autocast, channels_last."""
import pytest
import torch

from irislib.config import ConfigError, UNetConfig
from irislib.models import layers
from irislib.models.unet import UNet
from unet_helpers import randomized  # noqa: F401  (shared with tests/gpu and tests/train)

gd_unet = pytest.importorskip("guided_diffusion.unet")
gd_nn = pytest.importorskip("guided_diffusion.nn")



def tiny_cfg(**kw) -> UNetConfig:
    base = dict(image_size=32, in_channels=1, num_channels=32, num_res_blocks=1, channel_mult=[1, 2],
                attention_resolutions=[16], num_heads=2, learn_sigma=True)
    return UNetConfig(**{**base, **kw})


def rel_err(a, b) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def guided_twin(cfg: UNetConfig) -> torch.nn.Module:
    return gd_unet.UNetModel(
        image_size=cfg.image_size, in_channels=cfg.in_channels + cfg.cond_channels, model_channels=cfg.num_channels,
        out_channels=cfg.in_channels * (2 if cfg.learn_sigma else 1), num_res_blocks=cfg.num_res_blocks,
        attention_resolutions=tuple(cfg.image_size // r for r in cfg.attention_resolutions),
        channel_mult=tuple(cfg.resolved_channel_mult()), num_heads=cfg.num_heads,
        num_head_channels=cfg.num_head_channels, use_scale_shift_norm=cfg.use_scale_shift_norm,
        resblock_updown=cfg.resblock_updown, use_new_attention_order=cfg.use_new_attention_order)


@pytest.mark.parametrize("kw", [dict(), dict(resblock_updown=True, use_new_attention_order=True),
                                dict(use_scale_shift_norm=False, num_head_channels=16, cond_channels=2)])
def test_state_dict_keys_and_shapes_match_guided(kw):
    cfg = tiny_cfg(**kw)
    ours, ref = UNet(cfg).state_dict(), guided_twin(cfg).state_dict()
    assert list(ours) == list(ref)
    assert all(ours[k].shape == ref[k].shape for k in ref)


def test_timestep_embedding_equals_guided():
    t = torch.tensor([0.0, 1.0, 17.5, 999.0, 3999.0])
    for dim in (64, 65, 192):
        assert torch.equal(layers.timestep_embedding(t, dim), gd_nn.timestep_embedding(t, dim))


def test_fresh_model_outputs_zero_and_takes_scalar_t():
    """Zero-initialised output conv (guided-diffusion's init): a new model predicts exactly 0."""
    model = UNet(tiny_cfg())
    out = model(torch.randn(2, 1, 32, 32), torch.tensor(5))
    assert out.shape == (2, 2, 32, 32) and not out.any()


def test_one_channel_with_cond_channels():
    cfg = tiny_cfg(cond_channels=1, learn_sigma=False)
    model = randomized(UNet(cfg)).eval()
    x, cond, t = torch.randn(2, 1, 32, 32), torch.randn(2, 1, 32, 32), torch.tensor([1, 900])
    with torch.no_grad():
        out = model(x, t, cond=cond)
        assert out.shape == (2, 1, 32, 32)
        assert torch.equal(out, model(torch.cat([x, cond], 1), t))  # cond is concatenated along channels
        assert not torch.allclose(out, model(x, t, cond=torch.zeros_like(cond)))  # and it matters
    with pytest.raises(ValueError, match="cond_channels=1"):
        model(x, t)


def test_320px_explicit_channel_mult():
    cfg = tiny_cfg(image_size=320, channel_mult=[1, 1, 2, 2, 4], attention_resolutions=[20], num_heads=4)
    model = UNet(cfg)
    assert any(isinstance(m, layers.AttentionBlock) for m in model.modules())  # 20 px = downsample rate 16
    with torch.no_grad():
        assert model(torch.randn(1, 1, 320, 320), torch.tensor([7])).shape == (1, 2, 320, 320)
    with pytest.raises(ConfigError, match="channel_mult"):
        UNet(UNetConfig(image_size=320))  # no default at 320 px: the error says what to set


def grads(model, x, t, autocast=False):
    torch.manual_seed(3)  # same dropout masks in both runs
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = model(x, t).float().pow(2).mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("autocast", [False, True])
def test_gradient_checkpointing_same_gradients(autocast):
    small = dict(image_size=16, attention_resolutions=[8], dropout=0.1)
    plain = randomized(UNet(tiny_cfg(**small))).train()
    ckpt = UNet(tiny_cfg(**small, use_checkpoint=True)).train()
    ckpt.load_state_dict(plain.state_dict())
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([10, 600])
    loss_a, ga = grads(plain, x, t, autocast)
    loss_b, gb = grads(ckpt, x, t, autocast)
    tol = 1e-2 if autocast else 1e-6  # bf16 kernels may pick other reduction orders on recompute
    assert torch.allclose(loss_a, loss_b, rtol=tol)
    assert all(rel_err(gb[n], ga[n]) < tol for n in ga if ga[n].norm() > 0)
    # Checkpointing must really be active: the blocks run again during backward.
    calls = []
    attn = next(m for m in ckpt.modules() if isinstance(m, layers.AttentionBlock))
    handle = attn.norm.register_forward_hook(lambda *a: calls.append(1))
    grads(ckpt, x, t, autocast)
    handle.remove()
    assert len(calls) == 2


def test_bf16_autocast_close_to_fp32():
    model = randomized(UNet(tiny_cfg(image_size=16, attention_resolutions=[8]))).eval()
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([4, 444])
    with torch.no_grad():
        ref = model(x, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, t)
    assert out.dtype == torch.bfloat16
    assert rel_err(out, ref) < 3e-2


def test_channels_last_same_output():
    model = randomized(UNet(tiny_cfg())).eval()
    x, t = torch.randn(2, 1, 32, 32), torch.tensor([4, 444])
    with torch.no_grad():
        ref = model(x, t)
        out = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last), t)
    assert rel_err(out, ref) < 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 autocast needs CUDA")
def test_fp16_autocast_cuda_matches_guided():
    cfg = tiny_cfg(in_channels=3, use_checkpoint=True)
    ref = randomized(guided_twin(cfg)).cuda().eval()
    ours = UNet(cfg).cuda()
    ours.load_state_dict(ref.state_dict())
    x, t = torch.randn(2, 3, 32, 32, device="cuda"), torch.tensor([4, 444], device="cuda")
    with torch.no_grad():
        expected = ref(x, t)
    with torch.autocast("cuda", dtype=torch.float16):
        out = ours(x, t)
        out.float().pow(2).mean().backward()  # checkpointed backward under autocast
    assert out.dtype == torch.float16 and rel_err(out, expected) < 1e-2
    assert all(torch.isfinite(p.grad).all() for p in ours.parameters() if p.grad is not None)


@pytest.mark.slow
def test_torch_compile_whole_graph():
    """Dynamo traces forward and backward without graph breaks (fullgraph=True fails on any break).

    The aot_eager backend skips inductor's C++ code generation, which takes minutes on 2 CPU cores;
    the inductor backend itself is exercised on a GPU (benchmarks/bench_unet_step.py --compile).
    """
    cfg = tiny_cfg(image_size=16, channel_mult=[1, 1], attention_resolutions=[8], use_checkpoint=True)
    model = randomized(UNet(cfg)).eval()
    x, t = torch.randn(1, 1, 16, 16), torch.tensor([9])
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    out = compiled(x, t)
    out.pow(2).mean().backward()
    with torch.no_grad():
        assert rel_err(out.detach(), model(x, t)) < 1e-5
    assert all(p.grad is not None for p in model.parameters())
