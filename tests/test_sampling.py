"""Flow-matching schedule and the standalone samplers, on a field whose exact velocity is known."""


import pytest
import torch

from ccl_core.sampling import flow_sigmas, sample, shift_sigmas

MU, STD = 1.5, 0.5


def gaussian_velocity(x, t):
    """Exact v = E[noise - x0 | x_t] when x0 ~ N(MU, STD^2), noise ~ N(0, 1), x_t = (1-t) x0 + t noise."""
    a = 1 - t
    var = a * a * STD * STD + t * t
    centred = x - a * MU
    e_x0 = MU + a * STD * STD / var * centred
    e_eps = t / var * centred
    return e_eps - e_x0


@pytest.mark.parametrize("method, steps, shift", [("euler", 200, 1.0), ("euler", 200, 3.0),
                                                  ("dpmpp_2m", 24, 1.0), ("dpmpp_2m", 32, 3.0)])
def test_sampling_recovers_the_target_distribution(method, steps, shift):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(20000, generator=g, dtype=torch.float64)
    out = sample(lambda x, t: {k: gaussian_velocity(v, t) for k, v in x.items()}, {"x": z},
                 flow_sigmas(steps, shift), method)
    x = out["x"]
    # the exact flow maps noise z to MU + STD * z: compare sample by sample, then the statistics
    err = (x - (MU + STD * z)).abs()
    assert err.mean().item() < 0.01 and err.max().item() < 0.05
    assert x.mean().item() == pytest.approx(MU, abs=0.02)
    assert x.std().item() == pytest.approx(STD, abs=0.02)


def test_second_order_beats_euler_at_few_steps():
    g = torch.Generator().manual_seed(0)
    noise = {"x": torch.randn(20000, generator=g, dtype=torch.float64)}
    fn = lambda x, t: {k: gaussian_velocity(v, t) for k, v in x.items()}
    exact = MU + STD * noise["x"]
    err = {m: (sample(fn, noise, flow_sigmas(8, 1.0), m)["x"] - exact).abs().max().item() for m in ("euler", "dpmpp_2m")}
    assert err["dpmpp_2m"] < err["euler"] / 3


def test_held_stream_stays_clean():
    clean = torch.ones(10)
    out = sample(lambda x, t: {k: torch.ones_like(v) for k, v in x.items()},
                 {"video": torch.zeros(10), "audio": clean}, flow_sigmas(4), "euler", hold={"audio"})
    assert torch.equal(out["audio"], clean)
    torch.testing.assert_close(out["video"], -torch.ones(10, dtype=torch.float32))


def test_shift_schedule():
    s = flow_sigmas(4, 5.0)
    assert s[0] == 1 and s[-1] == 0 and (s[:-1] > s[1:]).all()
    assert shift_sigmas(torch.tensor(0.5), 5.0).item() == pytest.approx(5 * 0.5 / (1 + 4 * 0.5))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        flow_sigmas(0)
    with pytest.raises(ValueError, match="Unknown sampler 'heun'"):
        sample(lambda x, t: x, {"x": torch.zeros(1)}, s, "heun")
