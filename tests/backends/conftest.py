import pytest


def make_lively(tok, seed: int = 0):
    """A tiny random model with large weights, so greedy decoding varies with the prompt (a default-init
    tiny model emits the same token forever, which would make order/batching tests vacuous)."""
    import torch

    from r2d.pivots import expand_tokenizer
    from r2d.testing import tiny_model

    model = tiny_model(tok, seed=seed)
    expand_tokenizer(tok, model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


@pytest.fixture
def lively(byte_tok):
    from r2d.backends.hf import HFBackend

    return HFBackend(make_lively(byte_tok), byte_tok, progress=False)
