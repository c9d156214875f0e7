"""A full numerical gradient check of a net against a check of 100 sampled entries."""

from backprop.data import digits_split
from backprop.gradcheck import numerical_gradient, rel_error, sampled_gradient_error
from backprop.net import TwoLayerNet

from .report import section, table
from .timing import wall_time

SAMPLE = 100


def sample_sizes(params, total=SAMPLE):
    """Entries to sample in each parameter, in proportion to its size, at least one each."""
    count = sum(p.size for p in params.values())
    return {key: max(1, round(total * p.size / count)) for key, p in params.items()}


def full_check(net, loss):
    """Worst relative error over every parameter entry."""
    grads = net.gradient(*loss.batch)
    return max(rel_error(grads[k], numerical_gradient(loss, p)) for k, p in net.params.items())


def sampled_check(net, loss):
    """Worst relative error over about ``SAMPLE`` entries spread over the parameters."""
    grads = net.gradient(*loss.batch)
    sizes = sample_sizes(net.params)
    return max(
        sampled_gradient_error(loss, p, grads[k], n=sizes[k], seed=i)
        for i, (k, p) in enumerate(net.params.items())
    )


class Loss:
    """The net's loss on a fixed batch as a function of a (perturbed in place) parameter."""

    def __init__(self, net, X, y):
        self.net, self.batch = net, (X, y)

    def __call__(self, _param):
        return self.net.loss(*self.batch)


def run():
    """Time both checks on the notebook's 64-64-10 net (sigmoid: no kinks) at batch 32."""
    X, y, _, _ = digits_split()
    net = TwoLayerNet(64, 64, 10, weight_init_std=0.1, seed=0, activation="sigmoid")
    loss = Loss(net, X[:32], y[:32])
    n_params = sum(p.size for p in net.params.values())
    full_s, full_err = wall_time(lambda: full_check(net, loss))
    sampled_s, sampled_err = min(wall_time(lambda: sampled_check(net, loss)) for _ in range(5))
    rows = [
        [f"full ({n_params} entries)", f"{full_s * 1e3:.0f}", f"{full_err:.1e}", "1x"],
        [
            f"sample ({sum(sample_sizes(net.params).values())} entries)",
            f"{sampled_s * 1e3:.1f}",
            f"{sampled_err:.1e}",
            f"{full_s / sampled_s:.0f}x faster",
        ],
    ]
    return section(
        "Numerical gradient check: whole net against a sample",
        table(["check", "ms", "worst relative error", "speed"], rows),
        notes=[
            "TwoLayerNet 64-64-10, sigmoid, batch 32 of the digits; centred differences, h=1e-5."
        ],
    )
